"""Anonymous, opt-out usage telemetry for Flower Datasets.

Decorate a public function with ``@track("load_partition")``; each finished call
becomes one event, built by collector plugins and sent on a background thread.
``FLWR_TELEMETRY_ENABLED=0`` turns it off, ``FLWR_TELEMETRY_LOGGING=1`` shows every
payload. Importing this package imports neither pluggy, requests nor py-cpuinfo.
"""

from __future__ import annotations

from ._track import event, track
from ._version import __version__

TYPE_CHECKING = False  # see `_track`: nothing heavy is imported until it is needed
if TYPE_CHECKING:
    from typing import Any

    from ._call import TrackedCall
    from ._control import Status, disable, flush, status
    from .hookspecs import hookimpl

_LAZY = {
    "TrackedCall": "._call",
    "Status": "._control",
    "disable": "._control",
    "flush": "._control",
    "status": "._control",
    "hookimpl": ".hookspecs",
}

__all__ = [
    "Status",
    "TrackedCall",
    "__version__",
    "disable",
    "event",
    "flush",
    "hookimpl",
    "status",
    "track",
]


def __getattr__(name: str) -> Any:
    """Names imported on first use (`hookimpl` is what brings pluggy in)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
