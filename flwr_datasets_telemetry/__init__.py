"""Anonymous, opt-out usage telemetry for Flower Datasets.

Decorate a public function with ``@track("load_partition")``; each finished call
becomes one event, built by collector plugins and sent on a background thread.
``FLWR_TELEMETRY_ENABLED=0`` turns it off, ``FLWR_TELEMETRY_LOGGING=1`` shows every
payload. Importing this package imports neither pluggy, requests nor py-cpuinfo.

Import cost — the one list of the tricks that keep ``import flwr_datasets_telemetry``
down to this package's own small modules and ``atexit`` (``tests/test_import.py``
fences exactly that set):

- ``TYPE_CHECKING = False`` instead of importing `typing`, in every module on the
  import path (typing, dataclasses and inspect are imported on first use, if ever);
- a bare ``_thread`` lock until the first event (`threading` comes with the sender);
- `_runtime.random_uuid` instead of `uuid`;
- the public names that need pluggy (`hookimpl`) or dataclasses are resolved lazily.

Measured (``benchmarks/run.py``, row "import"): +1.6 ms over a bare interpreter start.
In a bare interpreter the tricks save about 12 ms (+4.2 vs +16.3 ms); in a host that
already imports the standard library, as Flower Datasets does, about 0.4 ms (+1.4 vs
+1.8 ms). They are kept because they cost nothing to keep and the fence holds them.

The first event's cost on the background thread (benchmark row "CPU per process") is
mostly imports. These choices keep modules out of it that a host without logging on
never needs (``tests/test_import.py`` checks the event path leaves them out); each saves
only in a host that has not imported them already (Flower Datasets imports them all):

- `importlib.metadata` (with ``email``, ``zipfile``, ``csv``, ``pathlib``) is imported
  only where a distribution may declare a plugin of ours (`_plugins._surely_no_plugin`
  looks first, on the layout it knows, and leaves every other to the full parse) or a
  tracked function belongs to a distribution (a script's does not): about 20 ms;
- `tempfile` only when a file is written (the source id, the hardware cache): 4 ms;
- the machine's and Python's names come from `os.uname` and `sys` (`_machine`), not
  `platform` (2 ms) or `socket` (3 ms); the source id is made by `_runtime.random_uuid`
  and read by `_identity.canonical_uuid`, not `uuid` (which imports `platform`);
- the event's date is formatted with `time`, not `datetime`: 3 ms;
- `logging` is imported only with logging on, or before requests for in-process
  delivery (`_log`, `_lifecycle.import_logging`): 6 ms;
- the hardware cache key is two checksums, not `hashlib` (OpenSSL): 4 ms;
- the sender's small records are ``NamedTuple``s, not dataclasses: 2.5 ms.

Together: +33 instead of +55 ms of CPU per process in a bare interpreter (the
``process_cpu`` benchmark program, median of 7, this session's machine).
"""

from __future__ import annotations

from ._track import event, track
from ._version import __version__

TYPE_CHECKING = False  # import cost: see the list above
if TYPE_CHECKING:
    from typing import Any

    from ._call import ObjectState, TrackedCall
    from ._control import disable, flush
    from ._status import Status, status
    from .hookspecs import hookimpl

_LAZY = {
    "ObjectState": "._call",
    "TrackedCall": "._call",
    "Status": "._status",
    "disable": "._control",
    "flush": "._control",
    "status": "._status",
    "hookimpl": ".hookspecs",
}

__all__ = [
    "ObjectState",
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
