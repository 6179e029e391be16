"""OPTiML pretraining; see ``python tools/pretrain.py --help``."""

import sys

from optiml_plugin.train.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
