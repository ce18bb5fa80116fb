"""Ray job entrypoint: ``python jobs/preprocess.py CARD --out s3://bucket/prefix [options]``.

Same options and exit codes as ``affectlab preprocess`` (it is the same code).
"""

from __future__ import annotations

import sys

from affectlab.cli import main

if __name__ == "__main__":
    main(["preprocess", *sys.argv[1:]])
