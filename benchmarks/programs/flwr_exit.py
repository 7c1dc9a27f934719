"""Flower Datasets 0.6.1's own telemetry at exit, side by side with `exit.py`.

Arguments: URL (where its events go), EVENTS. Timed from outside, with a cap.
"""

from __future__ import annotations

import sys

# No type information in flwr-datasets (and no flwr-datasets below Python 3.11).
from flwr_datasets.common import telemetry  # type: ignore[import-untyped, import-not-found, unused-ignore]

telemetry.TELEMETRY_EVENTS_URL = sys.argv[1]
for _ in range(int(sys.argv[2])):
    telemetry.event(telemetry.EventType.PING)
