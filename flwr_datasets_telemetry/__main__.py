"""``python -m flwr_datasets_telemetry``: the same as ``flwr-datasets-telemetry``."""

import sys

from .cli import main

sys.exit(main())
