"""``python -m harness``: see harness/cli.py."""

import sys

from harness.cli import main

if __name__ == "__main__":  # the guard matters: vLLM and DDP spawn processes that re-import this
    sys.exit(main())
