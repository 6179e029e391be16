# Faster R-CNN R50-FPN from an OPTiML backbone on TBX11K's tuberculosis boxes,
# category-agnostic (TBX11K's "TB" detection: its three box categories merged into
# one, as the TBX11K paper's class-agnostic AP). data/tbx11k/ holds
# annotations/{train,val}.json (TBX11K's own train / val split) and images/; the
# cpu-real benchmark writes that layout from ../shared/data/tbx11k_tb_detection
# (optiml_plugin.eval.real.detection.write_tbx11k_coco).
#   python tools/train.py configs/mmdet/optiml_fasterrcnn_tbx11k.py
_base_ = "./optiml_fasterrcnn_rsna.py"

dataset_type = "CocoDataset"
data_root = "data/tbx11k/"
metainfo = dict(classes=("tuberculosis",), palette=[(220, 20, 60)])

train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo)
)
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo)
)
# TBX11K's test labels are not public: the test set is its val split.
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file="annotations/val.json",
    )
)

val_evaluator = dict(
    _delete_=True,
    type="CocoMetric",
    ann_file=data_root + "annotations/val.json",
    metric="bbox",
    prefix="coco",
)
test_evaluator = val_evaluator
# Gradient clipping, as mmdet's own fine-tuning recipes: without it a VICReg-
# pretrained ResNet-18 diverged (NaN loss at iteration ~35 of the cpu-real schedule).
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(checkpoint=dict(save_best="coco/bbox_mAP", rule="greater"))
