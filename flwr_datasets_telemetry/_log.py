"""The one place that writes to the user's terminal, and only with logging on.

Nothing is configured at import (that would import `logging` into every host);
`enable` runs on the background thread the first time something must be said.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

LOGGER_NAME: Final = "flwr_datasets_telemetry"
logger: Final = logging.getLogger(LOGGER_NAME)

_state = {"on": False}


def enable() -> None:
    """Route this package's records to stderr, and only there."""
    if _state["on"]:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _state["on"] = True


def log(message: str) -> None:
    """Say ``message`` if inspect mode (``FLWR_TELEMETRY_LOGGING=1``) is on; never raise."""
    if not _state["on"]:
        return
    try:
        logger.info(message)
    except Exception:
        pass
