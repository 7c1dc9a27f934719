"""Example collector: which ML framework drives the work, and how many GPUs it sees.

Only frameworks the program has already imported are asked — this plugin never
imports one (that would cost seconds and gigabytes) and never initialises a device
(``torch.cuda.device_count`` reads the driver without creating a CUDA context). A
framework that is not in use is reported as ``None``: absent, not zero.

Its facts land in the payload under ``context.accelerators``.
"""

from __future__ import annotations

import sys
from typing import Any

from flwr_datasets_telemetry import hookimpl


def _torch() -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    cuda = getattr(torch, "cuda", None)
    return {
        "version": getattr(torch, "__version__", None),
        "cuda_version": getattr(getattr(torch, "version", None), "cuda", None),
        "cuda_devices": cuda.device_count() if cuda is not None else 0,
    }


def _jax() -> dict[str, Any] | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    platforms = sorted({device.platform for device in jax.devices()})
    return {"version": getattr(jax, "__version__", None), "platforms": platforms}


def _tensorflow() -> dict[str, Any] | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    return {"version": getattr(tf, "__version__", None), "gpus": len(gpus)}


@hookimpl
def telemetry_collect() -> dict[str, Any]:
    return {"torch": _torch(), "jax": _jax(), "tensorflow": _tensorflow()}
