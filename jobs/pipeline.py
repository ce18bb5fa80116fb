"""Job entrypoint: ``ray job submit -- python jobs/pipeline.py search_spaces/vsr.yaml --out s3://...``."""

import sys

from affectlab.cli import main

if __name__ == "__main__":
    main(["pipeline", *sys.argv[1:]])
