"""Collector ``version``: which distribution owns the tracked function, and versions.

Lands in ``context.package``. The owner is found from the function's module through
`importlib.metadata.packages_distributions`, which is computed once per process.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._call import TrackedCall


@functools.cache
def _distributions_by_package() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


@functools.cache
def owner(module: str | None) -> tuple[str, str] | None:
    """``(distribution name, version)`` of the distribution providing ``module``."""
    if not module or module == "__main__":
        return None
    names = _distributions_by_package().get(module.partition(".")[0], [])
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        return dist.metadata["Name"] or name, dist.version
    return None


@hookimpl
def telemetry_collect(call: TrackedCall) -> dict[str, Any]:
    found = owner(call.module)
    return {
        "package_name": found[0] if found else None,
        "package_version": found[1] if found else None,
        "telemetry_version": __version__,
    }
