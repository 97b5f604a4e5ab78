"""``python -m harness.sweep RUN_SPEC_JSON``: one run of a ``local`` sweep (started by ``harness sweep``)."""

import sys

from harness.sweep.worker import worker_main

sys.exit(worker_main())
