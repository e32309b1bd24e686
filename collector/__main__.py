"""`python -m collector` is the same as `cc-collector`."""

import sys

from collector.cli import main

sys.exit(main())
