"""Job entrypoint: ``ray job submit -- python jobs/train.py EXPERIMENT.yaml --out s3://...``."""

import sys

from affectlab.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
