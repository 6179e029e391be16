"""See optiml_plugin/eval/classification_cli.py (`python tools/eval_cls.py --help`)."""

import sys

from optiml_plugin.eval.classification_cli import main

if __name__ == "__main__":
    sys.exit(main())
