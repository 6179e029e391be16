"""OPTiML against Lightly's VICReg, VICRegL and Barlow Twins: compute and quality,
one run, one report (see optiml_plugin/eval/benchmark.py).

    python tools/benchmark.py                                # the README's small CPU scale
    python tools/benchmark.py --data shared:../shared/data   # real radiographs
    python tools/benchmark.py --render-only results/benchmark/benchmark.json --readme README.md
"""

import sys

from optiml_plugin.eval.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
