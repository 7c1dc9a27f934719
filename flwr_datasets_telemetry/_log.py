"""The one place that writes to the user's terminal, and only with logging on.

Nothing is configured at import (that would import `logging` into every host);
`enable` runs on the background thread the first time something must be said.
"""

from __future__ import annotations

import _thread
import logging
import sys
from typing import Final

LOGGER_NAME: Final = "flwr_datasets_telemetry"
logger: Final = logging.getLogger(LOGGER_NAME)


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


_state = _Switch()
_enabling = _thread.allocate_lock()


def enable() -> None:
    """Route this package's records to stderr, and only there (one handler, whichever
    thread gets here first; the wait is bounded and only happens with logging on)."""
    if _state.on or not _enabling.acquire(True, 1.0):
        return
    try:
        if not _state.on:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
            _state.on = True
    finally:
        _enabling.release()


def log(message: str) -> None:
    """Say ``message`` if inspect mode (``FLWR_TELEMETRY_LOGGING=1``) is on; never raise."""
    if not _state.on:
        return
    try:
        logger.info(message)
    except Exception:
        pass
