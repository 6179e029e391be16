"""Diagnose an OPTiML checkpoint: position shortcut or content? See ``--help``."""

import sys

from optiml_plugin.train.diagnose import main

if __name__ == "__main__":
    sys.exit(main())
