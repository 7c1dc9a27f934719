"""The one place that writes to the user's terminal, and only with logging on.

`logging` itself is imported only by `enable` (6 ms in a host that has not imported it;
with logging off, a host never does), which runs on the background thread the first
time something must be said.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    import logging
    from typing import Final

LOGGER_NAME: Final = "flwr_datasets_telemetry"


class _Switch:
    __slots__ = ("logger", "on")

    def __init__(self) -> None:
        self.on = False
        self.logger: logging.Logger | None = None


_state = _Switch()
_enabling = _thread.allocate_lock()


def enable() -> None:
    """Route this package's records to stderr, and only there (one handler, whichever
    thread gets here first; the wait is bounded and only happens with logging on)."""
    if _state.on or not _enabling.acquire(True, 1.0):
        return
    try:
        if not _state.on:
            from . import _lifecycle

            _lifecycle.import_logging()
            import logging

            logger = _state.logger = logging.getLogger(LOGGER_NAME)
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
    logger = _state.logger
    if not _state.on or logger is None:
        return
    try:
        logger.info(message)
    except Exception:
        pass
