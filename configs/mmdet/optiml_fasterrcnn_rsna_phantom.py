# The RSNA recipe on the embedded phantom radiographs (no download): lesion boxes of
# three classes, written to data/phantom/ on first use, and the ResNet-18 backbone
# that `make demo` pretrains (runs/demo/backbone.pth). A CPU run of a few minutes:
#   python tools/train.py configs/mmdet/optiml_fasterrcnn_rsna_phantom.py
_base_ = "./optiml_fasterrcnn_rsna.py"

dataset_type = "PhantomLesionDataset"
data_root = "data/phantom/"
# Phantoms are written on first use (64 images of 256 px, seed 0; any set already
# in data_root is kept); to choose, add phantom=dict(num_images=..., size=..., seed=...)
# to the datasets below.
image_scale = (256, 256)

model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint="runs/demo/backbone.pth")),
    neck=dict(in_channels=[64, 128, 256, 512]),
    # Phantom nodules are 5-15 px: COCO's smallest anchor (32 px) never reaches the
    # RPN's 0.3 IoU to match them, so anchors start at 8 px.
    rpn_head=dict(anchor_generator=dict(scales=[2, 4])),
    roi_head=dict(bbox_head=dict(num_classes=3)),
    # Fewer proposals and sampled RoIs than COCO's 2000 / 512: a 256 px phantom has at
    # most a few lesions, and RoIAlign dominates a CPU step.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128)),
    ),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)),
)

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
    batch_size=4,
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline)
)
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file="annotations/val.json",
        pipeline=test_pipeline,
    )
)

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
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type="MultiStepLR",
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[9],
        gamma=0.1,
    ),
]
default_hooks = dict(logger=dict(interval=6), checkpoint=dict(interval=4))
