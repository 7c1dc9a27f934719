"""Collector ``version``: which distribution owns the tracked function, and versions.

Lands in ``context.package``. The owner is found from the function's top-level module:
first by the usual naming (``flwr_datasets`` is ``flwr-datasets``: one directory
look-up). Only for a module installed in site-packages under another name (``yaml``
from PyYAML) is `importlib.metadata.packages_distributions` consulted: it reads every
installed distribution's file list, which can take a second in a large environment,
so it runs at most once per process and never for a local module (a script, a
project on ``sys.path``), which belongs to no distribution.

`importlib.metadata` (15-30 ms in a bare interpreter, with ``email``, ``zipfile`` and
``csv``) is imported at the first look-up, not with this module: a function of a
script (``__main__``) needs none.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path  # loaded with `_pipeline` already (collectors get a `Path` home)
from typing import TYPE_CHECKING, Any

from .. import _runtime
from .._version import __version__
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._call import TrackedCall


def _import_metadata() -> None:
    """`importlib.metadata` and what its look-ups import as they go (the `email`
    parser; on 3.13 also ``_adapters``, `datetime`, `urllib.parse`), with the fork
    guard held: a look-up itself may then run unguarded, however long it takes."""
    for name in ("importlib.metadata", "importlib.metadata._adapters", "email.parser"):
        _runtime.import_guarded(name)


@functools.cache
def _distributions_by_package() -> dict[str, list[str]]:
    _import_metadata()
    _runtime.import_guarded("csv")  # 3.13 imports it as it reads the file lists
    from importlib import metadata

    # Unguarded: it reads every distribution's file list (a second in a large
    # environment), and a host's fork must not wait for that.
    return dict(metadata.packages_distributions())


@functools.cache
def _install_folders() -> tuple[Path, ...]:
    _runtime.import_guarded("sysconfig")
    import sysconfig

    paths = _runtime.run_guarded(sysconfig.get_paths)  # imports _sysconfigdata under a lock
    return tuple({Path(paths[key]).resolve() for key in ("purelib", "platlib") if key in paths})


def _is_installed(top: str) -> bool:
    """Whether module ``top`` was imported from an installation folder (site-packages)."""
    file = getattr(sys.modules.get(top), "__file__", None)
    if not file:
        return False
    folder = Path(file).resolve().parent
    return any(folder == root or root in folder.parents for root in _install_folders())


def _distribution(name: str) -> tuple[str, str] | None:
    _import_metadata()
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    return dist.metadata["Name"] or name, dist.version


@functools.cache
def owner(module: str | None) -> tuple[str, str] | None:
    """``(distribution name, version)`` of the distribution providing ``module``."""
    if not module or module == "__main__":
        return None
    top = module.partition(".")[0]
    found = _distribution(top)
    if found is None and _is_installed(top):
        for name in _distributions_by_package().get(top, []):
            found = _distribution(name)
            if found is not None:
                break
    return found


@hookimpl
def telemetry_collect(call: TrackedCall) -> dict[str, Any]:
    found = owner(call.module)
    return {
        "package_name": found[0] if found else None,
        "package_version": found[1] if found else None,
        "telemetry_version": __version__,
    }
