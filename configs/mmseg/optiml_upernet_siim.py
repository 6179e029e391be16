# UPerNet on an OPTiML ResNet-50 for SIIM-ACR pneumothorax segmentation
# (tools/prepare_data.py siim -> data/siim/). Inherits mmseg's shipped model,
# runtime and schedule configs; overrides the backbone, the data and the metrics.
#   python tools/train.py configs/mmseg/optiml_upernet_siim.py
_base_ = [
    "mmseg::_base_/models/upernet_r50.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_20k.py",
]

custom_imports = dict(imports=["optiml_plugin.mm.seg"], allow_failed_imports=False)

pretrained = "runs/optiml_nih_r50/backbone.pth"
crop_size = (512, 512)
norm_cfg = dict(type="SyncBN", requires_grad=True)

model = dict(
    # Grey replicated to 3 channels by LoadChestXray, ImageNet statistics as in
    # OPTiML pretraining.
    data_preprocessor=dict(size=crop_size, bgr_to_rgb=False),
    pretrained=None,  # the backbone's init_cfg loads the OPTiML file instead
    backbone=dict(
        _delete_=True,
        type="OPTiMLResNet",
        depth=50,
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=dict(type="Pretrained", checkpoint=pretrained),
    ),
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2),
)

dataset_type = "SIIMPneumothoraxDataset"
data_root = "data/siim/"
image_scale = (1024, 1024)
train_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="LoadAnnotations"),
    dict(
        type="RandomResize", scale=image_scale, ratio_range=(0.5, 1.0), keep_ratio=True
    ),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="Resize", scale=(512, 512), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
data_prefix = dict(img_path="images", seg_map_path="masks")
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file="splits/train.txt",
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file="splits/val.txt",
        pipeline=test_pipeline,
    ),
)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader["dataset"], ann_file="splits/test.txt"),
)

# Pooled Dice / IoU over all pixels (mmseg), and SIIM-ACR's per-image Dice: mean over
# all images (empty truth and empty prediction = 1) and over positive images.
val_evaluator = [
    dict(type="IoUMetric", iou_metrics=["mDice", "mIoU"]),
    dict(type="PerImageDiceMetric", class_index=1),
]
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best="dice/dice_all", rule="greater"))
