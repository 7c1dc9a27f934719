"""What this machine and interpreter are: `platform`'s answers without `platform`.

Importing `platform` compiles nine regular expressions: about 2 ms of a bare
interpreter's first event, for values `os.uname` and `sys` hold already. `platform`
remains the fallback where they do not (no `os.uname` on Windows, an interpreter
`IMPLEMENTATIONS` does not name, a `sys.version` that does not start with a number).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Final, NamedTuple

#: `platform.python_implementation`'s spelling of `sys.implementation.name`.
IMPLEMENTATIONS: Final = {"cpython": "CPython", "pypy": "PyPy"}


class Uname(NamedTuple):
    """`platform.uname`'s first four fields. ``node`` is the host name: never sent."""

    system: str
    node: str
    release: str
    machine: str


#: Where `platform.uname` says more than `os.uname` (Android and iOS since 3.13: the
#: OS and its release, not the kernel's; OpenVMS and old Windows: fields fixed up).
_PLATFORM_KNOWS_BETTER: Final = frozenset({"android", "ios"})
_SYSTEMS_FIXED_UP: Final = frozenset({"OpenVMS", "Microsoft"})


@functools.cache
def uname() -> Uname:
    if hasattr(os, "uname") and sys.platform not in _PLATFORM_KNOWS_BETTER:
        raw = os.uname()
        if raw.sysname not in _SYSTEMS_FIXED_UP:
            fields = (raw.sysname, raw.nodename, raw.release, raw.machine)
            return Uname(*("" if field == "unknown" else field for field in fields))
    from . import _runtime  # the fork guard: `platform` (and on Android `ctypes`) imports

    _runtime.import_guarded("platform")
    import platform

    found = _runtime.run_guarded(platform.uname)
    return Uname(found.system, found.node, found.release, found.machine)


def python_implementation() -> str:
    """``CPython``, ``PyPy``, ...: as `platform.python_implementation` says."""
    name = IMPLEMENTATIONS.get(sys.implementation.name)
    if name is None:
        import platform

        return platform.python_implementation()
    return name


def python_version() -> str:
    """``3.11.7``, ``3.13.0rc1``: `sys.version`'s first word, as `platform.python_version`
    reads it (a version of two numbers gets ``.0``)."""
    version = sys.version.split(maxsplit=1)[0] if sys.version else ""
    if not version[:1].isdigit():
        import platform

        return platform.python_version()
    return f"{version}.0" if version.count(".") == 1 else version
