# The VinDr-CXR recipe (multi-class findings) on the embedded phantoms: the same
# phantom set as optiml_fasterrcnn_rsna_phantom.py, whose three lesion classes stand
# in for VinDr's fourteen, scored with VinDr's mAP@0.4.
#   python tools/train.py configs/mmdet/optiml_fasterrcnn_vindr_phantom.py
_base_ = "./optiml_fasterrcnn_rsna_phantom.py"

data_root = "data/phantom/"
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
default_hooks = dict(checkpoint=dict(save_best="vindr/bbox_mAP", rule="greater"))
