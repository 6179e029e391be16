# FCN (output stride 8) on an OPTiML ResNet-50 for lung-field segmentation. The
# data layout is images/ + masks/ (0 background, 1 lung, 255 ignore), e.g. the
# covid_cxr_lungseg set; without split files, a stable hash of each name picks
# train / val and images without a mask are left out.
#   python tools/train.py configs/mmseg/optiml_fcn_lungs.py \
#       --data-root ../shared/data/covid_cxr_lungseg/
_base_ = [
    "mmseg::_base_/models/fcn_r50-d8.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_20k.py",
]

custom_imports = dict(imports=["optiml_plugin.mm.seg"], allow_failed_imports=False)

pretrained = "runs/optiml_nih_r50/backbone.pth"
crop_size = (512, 512)
norm_cfg = dict(type="SyncBN", requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size, bgr_to_rgb=False),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type="OPTiMLResNet",
        depth=50,
        out_indices=(0, 1, 2, 3),
        dilations=(False, True, True),
        norm_cfg=norm_cfg,
        init_cfg=dict(type="Pretrained", checkpoint=pretrained),
    ),
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2),
)

dataset_type = "ChestXrayLungDataset"
data_root = "data/lungs/"
train_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=crop_size, ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="Resize", scale=crop_size, keep_ratio=True),
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
        split="train",
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
        split="val",
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = [
    dict(type="IoUMetric", iou_metrics=["mDice", "mIoU"]),
    dict(type="PerImageDiceMetric", class_index=1),
]
test_evaluator = val_evaluator
# 4000 iterations, not schedule_20k's 20000: the PolyLR inherited from it must end
# with them, or the LR at the last iteration is still 82 % of the base.
max_iters = 4000
train_cfg = dict(max_iters=max_iters, val_interval=500)
param_scheduler = [
    dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(
    checkpoint=dict(interval=500, save_best="dice/dice_all", rule="greater")
)
