# Faster R-CNN R50-FPN from an OPTiML backbone on VinDr-CXR's 14 local findings
# (tools/prepare_data.py vindr -> data/vindr/, readers' boxes fused at IoU 0.4).
#   python tools/train.py configs/mmdet/optiml_fasterrcnn_vindr.py
_base_ = "./optiml_fasterrcnn_rsna.py"

dataset_type = "VinDrCXRDataset"
data_root = "data/vindr/"

model = dict(roi_head=dict(bbox_head=dict(num_classes=14)))

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# VinDr's converter writes train / val only: test on val.
test_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file="annotations/val.json"
    )
)

# VinDr-CXR's challenge scored mAP at IoU 0.4.
val_evaluator = [
    dict(
        type="CocoMetric",
        ann_file=data_root + "annotations/val.json",
        metric="bbox",
        prefix="coco",
    ),
    dict(
        type="ThresholdCocoMetric",
        ann_file=data_root + "annotations/val.json",
        metric="bbox",
        iou_thrs=[0.4],
        prefix="vindr",
    ),
]
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best="coco/bbox_mAP_50", rule="greater"))
