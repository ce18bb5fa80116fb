"""Job entrypoint: ``ray job submit -- python jobs/cv.py EXPERIMENT.yaml --folds loso --out s3://...``."""

import sys

from affectlab.cli import main

if __name__ == "__main__":
    main(["cv", *sys.argv[1:]])
