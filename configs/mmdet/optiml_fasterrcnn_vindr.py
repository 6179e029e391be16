# Faster R-CNN R50-FPN from an OPTiML backbone on VinDr-CXR's 14 local findings
# (tools/prepare_data.py vindr -> data/vindr/, readers' boxes fused at IoU 0.4).
#   python tools/train.py configs/mmdet/optiml_fasterrcnn_vindr.py
_base_ = "./optiml_fasterrcnn_rsna.py"

dataset_type = "VinDrCXRDataset"
data_root = "data/vindr/"

model = dict(roi_head=dict(bbox_head=dict(num_classes=14)))

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# The best checkpoint is chosen on val, so the test is VinDr-CXR's own test set
# (3000 images), converted on its own: the converter's annotations/all.json.
#   python tools/prepare_data.py vindr --labels annotations_test.csv \
#       --images test/ --out data/vindr_test
# --data-root moves train / val only; --cfg-options test_dataloader.dataset.data_root=
# moves this.
test_root = "data/vindr_test/"
test_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=test_root, ann_file="annotations/all.json"
    )
)

# VinDr-CXR's challenge scored mAP at IoU 0.4 ('vindr/bbox_mAP', the headline and
# the checkpoint selection); COCO's mAP alongside.
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
test_evaluator = [
    dict(metric, ann_file=test_root + "annotations/all.json")
    for metric in val_evaluator
]
default_hooks = dict(checkpoint=dict(save_best="vindr/bbox_mAP", rule="greater"))
