"""Collector ``platform``: operating system and Python, without host names.

Lands in ``context.platform``: `platform`'s ``system``, ``release``, ``machine``,
``python_implementation`` and ``python_version``, read through `_machine` (which
spares a bare interpreter the import of `platform`). The node name and
`platform.processor` (which runs ``uname -p``) are never sent.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import _machine
from ..hookspecs import hookimpl


@functools.cache
def facts() -> dict[str, Any]:
    system = _machine.uname()
    return {
        "system": system.system,
        "release": system.release,
        "machine": system.machine,
        "python_implementation": _machine.python_implementation(),
        "python_version": _machine.python_version(),
    }


@hookimpl
def telemetry_collect() -> dict[str, Any]:
    return facts()
