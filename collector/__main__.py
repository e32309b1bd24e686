"""`python -m collector` is the same as `cc-collector`."""

import sys

from collector.cli import main

# Guarded: plan workers are spawned processes (collector/planning.py), and a spawned child
# must not run the command line again when multiprocessing prepares its main module.
if __name__ == "__main__":
    sys.exit(main())
