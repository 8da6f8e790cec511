"""`python -m internflow.training REQUEST.json`: one training run in this process."""

import sys

from internflow.training.common import main

raise SystemExit(main(sys.argv))
