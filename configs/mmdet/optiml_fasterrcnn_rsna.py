# Faster R-CNN R50-FPN fine-tuned from an OPTiML backbone on RSNA Pneumonia (one
# class, lung opacity). Inherits mmdet's shipped config; overrides the backbone,
# the data (tools/prepare_data.py rsna -> data/rsna/) and the metrics.
#   python tools/train.py configs/mmdet/optiml_fasterrcnn_rsna.py
_base_ = "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"

custom_imports = dict(imports=["optiml_plugin.mm.det"], allow_failed_imports=False)

# The exported OPTiML backbone (tools/pretrain.py writes <out>/backbone.pth;
# tools/export_backbone.py converts a Lightning checkpoint). Loaded strictly:
# a missing or unexpected key raises.
pretrained = "runs/optiml_nih_r50/backbone.pth"

model = dict(
    # Radiographs enter as grey replicated to 3 channels (LoadChestXray), normalised
    # with the ImageNet statistics OPTiML pretraining used on the same grey input.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=False
    ),
    backbone=dict(
        _delete_=True,
        type="OPTiMLResNet",
        depth=50,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type="BN", requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type="Pretrained", checkpoint=pretrained),
    ),
    roi_head=dict(bbox_head=dict(num_classes=1)),
)

dataset_type = "RSNAPneumoniaDataset"
data_root = "data/rsna/"
image_scale = (1024, 1024)

train_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file="annotations/train.json",
        data_prefix=dict(img=""),
        filter_cfg=dict(filter_empty_gt=False, min_size=8),
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file="annotations/val.json",
        data_prefix=dict(img=""),
        test_mode=True,
        pipeline=test_pipeline,
    )
)
test_dataloader = dict(
    dataset=dict(val_dataloader["dataset"], ann_file="annotations/test.json")
)

# COCO bbox mAP (IoU 0.50:0.95, with mAP@0.5); at the RSNA challenge's IoU
# thresholds 0.40:0.05:0.75, COCO-style AP averaged over them ('rsna/bbox_mAP', a
# PROXY, its mAP_50 equals COCO's) and the challenge's own score
# ('rsna_score/score': per image, TP / (TP + FP + FN) of the boxes scoring >= 0.5,
# averaged over the thresholds, then over images).
rsna_iou_thrs = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]
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
        iou_thrs=rsna_iou_thrs,
        prefix="rsna",
    ),
    dict(
        type="RSNAPneumoniaMetric",
        ann_file=data_root + "annotations/val.json",
        iou_thrs=rsna_iou_thrs,
        score_thr=0.5,
    ),
]
test_evaluator = [
    dict(metric, ann_file=data_root + "annotations/test.json")
    for metric in val_evaluator
]

default_hooks = dict(checkpoint=dict(save_best="rsna/bbox_mAP", rule="greater"))
# Learning rate scales with the total batch (tools/train.py --auto-scale-lr).
auto_scale_lr = dict(enable=False, base_batch_size=16)
