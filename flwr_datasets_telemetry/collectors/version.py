"""Collector ``version``: which distribution owns the tracked function, and versions.

Lands in ``context.package``. The owner is found from the function's top-level module:
first by the usual naming (``flwr_datasets`` is ``flwr-datasets``: one directory
look-up), else through `importlib.metadata.packages_distributions`, which reads every
installed distribution's file list and so is computed at most once per process.
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
    top = module.partition(".")[0]
    found = _distribution(top)
    for name in () if found else _distributions_by_package().get(top, []):
        found = _distribution(name)
        if found:
            break
    return found


def _distribution(name: str) -> tuple[str, str] | None:
    try:
        dist = metadata.distribution(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    return dist.metadata["Name"] or name, dist.version


@hookimpl
def telemetry_collect(call: TrackedCall) -> dict[str, Any]:
    found = owner(call.module)
    return {
        "package_name": found[0] if found else None,
        "package_version": found[1] if found else None,
        "telemetry_version": __version__,
    }
