"""Anonymous, opt-out usage telemetry for Flower Datasets.

Decorate a public function with ``@track("load_partition")``; each finished call
becomes one event, built by collector plugins and sent on a background thread.
``FLWR_TELEMETRY_ENABLED=0`` turns it off, ``FLWR_TELEMETRY_LOGGING=1`` shows every
payload. Importing this package imports neither pluggy, requests nor py-cpuinfo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._call import TrackedCall
from ._control import Status, flush, status
from ._track import event, track
from ._version import __version__

if TYPE_CHECKING:
    from .hookspecs import hookimpl

__all__ = [
    "Status",
    "TrackedCall",
    "__version__",
    "event",
    "flush",
    "hookimpl",
    "status",
    "track",
]


def __getattr__(name: str) -> Any:
    """`hookimpl` is imported on first use: it is what brings pluggy in."""
    if name == "hookimpl":
        from .hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
