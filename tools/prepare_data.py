"""Converts a public chest X-ray dataset (NIH, RSNA, SIIM, VinDr) from its original layout.

Usage: ``python tools/prepare_data.py {nih,rsna,siim,siim-rle,vindr,show} --help``.
"""

from __future__ import annotations

import sys

from optiml_plugin.data.prepare import main

if __name__ == "__main__":
    sys.exit(main())
