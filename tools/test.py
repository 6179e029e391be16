"""Evaluate a fine-tuned mmdet or mmseg checkpoint (mmdet's test.py shape).

python tools/test.py CONFIG work_dirs/NAME/epoch_6.pth [--out metrics.json]
"""

from optiml_plugin.mm.cli import test

if __name__ == "__main__":
    test()
