"""Collector ``platform``: operating system and Python, without host names.

Lands in ``context.platform``. Only `platform` calls that read `os.uname` or
constants: `platform.processor` (which runs ``uname -p``) and `platform.node` are
never used.
"""

from __future__ import annotations

import functools
import platform as _platform
from typing import Any

from ..hookspecs import hookimpl


@functools.cache
def facts() -> dict[str, Any]:
    return {
        "system": _platform.system(),
        "release": _platform.release(),
        "machine": _platform.machine(),
        "python_implementation": _platform.python_implementation(),
        "python_version": _platform.python_version(),
    }


@hookimpl
def telemetry_collect() -> dict[str, Any]:
    return facts()
