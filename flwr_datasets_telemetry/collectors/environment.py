"""Collector ``environment``: where the process runs — CI, notebook, container, scheduler.

Lands in ``context.env``. Every field is an enumeration, a flag or a small count,
decided by whether a variable is set or a file exists: no value read from the
environment is ever reported, only the name from the tables below that it maps to.

A variable counts as set when its value is non-empty and is not ``0``, ``false``,
``no`` or ``off`` (any case, surrounding blanks ignored). Variables and ``sys.modules``
are read at each collection (a dozen dictionary look-ups: a notebook may set a
variable, a program may import Ray, after the first event); the file-system markers
cost at most three ``lstat`` calls and one directory listing, read once per process
(per `ROOT`), on the sender thread. Nothing here starts a process, opens a socket,
imports a package, or calls into the host's objects. Anything odd or unreadable makes
its field ``null``.

=================  ===============================================================
field              decided by (first match wins)
=================  ===============================================================
``ci``             `_ci.CI_VARIABLES`; else ``CI`` set: ``"unknown"``; else ``false``
``notebook``       ``google.colab`` imported or a `COLAB_VARIABLES` one set:
                   ``"colab"``; ``KAGGLE_KERNEL_RUN_TYPE`` set: ``"kaggle"``;
                   ``ipykernel`` imported (an IPython kernel runs): ``"jupyter"``
``container``      ``KUBERNETES_SERVICE_HOST`` set: ``"kubernetes"``; on Linux,
                   ``/.dockerenv``: ``"docker"``, ``/run/.containerenv``: ``"podman"``
``scheduler``      `SCHEDULER_VARIABLES` (Sun/Univa Grid Engine needs both
                   ``JOB_ID`` and ``SGE_ROOT``: ``JOB_ID`` alone is too common)
``simulation``     ``ray`` imported (Flower's simulation engine runs on Ray)
``gpu_count``      on Linux, the GPU folders in ``/proc/driver/nvidia/gpus``; ``0``
                   when ``/proc/driver`` has no such folder; ``null`` elsewhere
=================  ===============================================================
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from pathlib import Path
from typing import Any, Final

from .._ci import ci_name, is_set
from ..hookspecs import hookimpl

#: The file-system root the markers are looked up under; tests point it elsewhere.
ROOT: Path = Path("/")
#: Whether the Linux-only markers (``/.dockerenv``, ``/proc``) mean anything here.
LINUX: bool = sys.platform.startswith("linux")

COLAB_VARIABLES: Final = ("COLAB_RELEASE_TAG", "COLAB_BACKEND_VERSION", "COLAB_GPU")
KAGGLE_VARIABLE: Final = "KAGGLE_KERNEL_RUN_TYPE"
KUBERNETES_VARIABLE: Final = "KUBERNETES_SERVICE_HOST"
#: ``(variables that must all be set, scheduler name)``: each one's job id variable.
SCHEDULER_VARIABLES: Final = (
    (("SLURM_JOB_ID",), "slurm"),
    (("PBS_JOBID",), "pbs"),
    (("LSB_JOBID",), "lsf"),
    (("JOB_ID", "SGE_ROOT"), "sge"),
)
#: Directory entries looked at in the NVIDIA driver's folder: a bound, not a guess.
MAX_GPU_ENTRIES: Final = 256


def imported(module: str) -> bool:
    """Whether ``module`` is imported (``None`` in sys.modules blocks an import)."""
    return sys.modules.get(module) is not None


def notebook_kind() -> str | None:
    if imported("google.colab") or any(map(is_set, COLAB_VARIABLES)):
        return "colab"
    if is_set(KAGGLE_VARIABLE):
        return "kaggle"
    return "jupyter" if imported("ipykernel") else None


def scheduler_name() -> str | None:
    for variables, name in SCHEDULER_VARIABLES:
        if all(map(is_set, variables)):
            return name
    return None


def _exists(path: Path) -> bool | None:
    """Whether ``path`` exists (a symlink counts, unfollowed); ``None`` if unknowable."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return None
    return True


def _container_marker(root: Path) -> str | None:
    if _exists(root / ".dockerenv"):
        return "docker"
    if _exists(root / "run" / ".containerenv"):
        return "podman"
    return None


def _gpu_count(root: Path) -> int | None:
    """NVIDIA GPUs the kernel driver lists: one folder per GPU, named by PCI address."""
    gpus = root / "proc" / "driver" / "nvidia" / "gpus"
    try:
        with os.scandir(gpus) as entries:
            return sum(
                entry.is_dir(follow_symlinks=False)
                for entry in itertools.islice(entries, MAX_GPU_ENTRIES)
            )
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return None
    # No such folder: no NVIDIA driver, if /proc is there to say so (a container may lack it).
    return 0 if _exists(root / "proc" / "driver") else None


@functools.lru_cache(maxsize=4)
def filesystem_facts(root: Path, linux: bool) -> tuple[str | None, int | None]:
    """``(container marker, GPU count)`` under ``root``: read once per process."""
    if not linux:
        return None, None
    return _container_marker(root), _gpu_count(root)


def facts() -> dict[str, Any]:
    """The ``env`` section, from variables and modules now and markers cached."""
    marker, gpus = filesystem_facts(ROOT, LINUX)
    return {
        "ci": ci_name(),
        "notebook": notebook_kind(),
        "container": "kubernetes" if is_set(KUBERNETES_VARIABLE) else marker,
        "scheduler": scheduler_name(),
        "simulation": imported("ray"),
        "gpu_count": gpus,
    }


@hookimpl
def telemetry_collect() -> dict[str, Any]:
    return facts()
