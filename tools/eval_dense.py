"""See optiml_plugin/eval/dense_cli.py (`python tools/eval_dense.py --help`)."""

import sys

from optiml_plugin.eval.dense_cli import main

if __name__ == "__main__":
    sys.exit(main())
