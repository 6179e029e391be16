"""Compare one method's evaluations in two cpu-real benchmark runs. See ``--help``."""

import sys

from optiml_plugin.eval.real.compare import main

if __name__ == "__main__":
    sys.exit(main())
