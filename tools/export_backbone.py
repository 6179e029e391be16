"""Export an OPTiML Lightning checkpoint's backbone; see ``--help``."""

import sys

from optiml_plugin.train.export import main

if __name__ == "__main__":
    sys.exit(main())
