# The lung-field recipe on the embedded phantoms' lung masks (no download), with
# the ResNet-18 that `make demo` pretrains.
#   python tools/train.py configs/mmseg/optiml_fcn_lungs_phantom.py
_base_ = "./optiml_fcn_lungs.py"

crop_size = (256, 256)
data_root = "data/phantom/"
# Phantoms are written on first use (64 images of 256 px, seed 0; any set already
# in data_root is kept); to choose, add phantom=dict(num_images=..., size=..., seed=...)
# to the datasets below.
norm_cfg = dict(type="BN", requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=18, norm_cfg=norm_cfg, init_cfg=dict(checkpoint="runs/demo/backbone.pth")
    ),
    decode_head=dict(in_channels=512, channels=128, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=64, norm_cfg=norm_cfg),
)

train_pipeline = [
    dict(type="LoadChestXray"),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
test_pipeline = train_pipeline
dataset = dict(
    _delete_=True, type="PhantomSegDataset", target="lungs", data_root=data_root
)
train_dataloader = dict(
    dataset=dict(dataset, ann_file="splits/train.txt", pipeline=train_pipeline)
)
val_dataloader = dict(
    dataset=dict(dataset, ann_file="splits/val.txt", pipeline=test_pipeline)
)
test_dataloader = val_dataloader

max_iters = 120
train_cfg = dict(max_iters=max_iters, val_interval=60)
param_scheduler = [
    dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=60))
