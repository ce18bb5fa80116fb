"""Ray job entrypoint: ``python jobs/report.py URI [--out URI]``.

Same options and exit codes as ``affectlab report``: writes URI/report/index.{md,html} and the
PNG plots for the run, CV or sweep outputs in URI (local or s3://).
"""

from __future__ import annotations

import sys

from affectlab.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
