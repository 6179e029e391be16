"""Fine-tune an OPTiML backbone with an mmdet or mmseg config (mmdet's train.py shape).

python tools/train.py configs/mmdet/optiml_fasterrcnn_rsna_phantom.py
python tools/train.py CONFIG --work-dir DIR --cfg-options train_cfg.max_epochs=1
python tools/train.py CONFIG --resume          # latest checkpoint in the work dir
bash tools/dist_train.sh CONFIG 4              # 4 GPUs through torch.distributed
"""

from optiml_plugin.mm.cli import train

if __name__ == "__main__":
    train()
