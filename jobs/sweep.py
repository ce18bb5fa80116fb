"""Ray job entrypoint: ``python jobs/sweep.py SPACE --out s3://bucket/prefix [--samples N] [--resume]``.

Same options and exit codes as ``affectlab sweep`` (it is the same code); inside
``ray job submit`` it joins the job's cluster (RAY_ADDRESS) instead of starting a local Ray.
"""

from __future__ import annotations

import sys

from affectlab.cli import main

if __name__ == "__main__":
    main(["sweep", *sys.argv[1:]])
