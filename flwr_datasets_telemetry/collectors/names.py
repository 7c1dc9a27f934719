"""Collector ``names``: dataset, split and partitioner facts, and the call's outcome.

Fills ``event_details``. Facts come from the allow-listed arguments and from ``self``
under Flower Datasets' own names (``FederatedDataset._dataset_name``,
``._partitioners``; a partitioner's ``_num_partitions``). Objects are read through
their instance ``__dict__`` only: no property or method of the host's objects runs on
the background thread. A dataset name that is not a Hugging Face Hub id, or that
exists on disk, is reported as `LOCAL_DATASET`, never as the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._call import TrackedCall

LOCAL_DATASET: Final = "<local>"
MAX_NAME: Final = 96
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def dataset_label(name: str) -> str:
    """``name`` if it can only be a Hub id, else the local-dataset placeholder."""
    if len(name) > MAX_NAME or not _HUB_ID.fullmatch(name):
        return LOCAL_DATASET
    try:
        if os.path.lexists(name):
            return LOCAL_DATASET
    except (OSError, ValueError):
        return LOCAL_DATASET
    return name


def _state(obj: object) -> Mapping[str, Any]:
    try:
        state = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return state if isinstance(state, Mapping) else {}


def _count(value: object) -> int | None:
    return value if type(value) is int else None


def describe_partitioner(partitioner: object) -> dict[str, Any]:
    """Class name and partition count of a partitioner (or of an int shorthand)."""
    if type(partitioner) is int:
        return {"partitioner": "IidPartitioner", "num_partitions": partitioner}
    state = _state(partitioner)
    count = _count(state.get("_num_partitions", state.get("num_partitions")))
    facts: dict[str, Any] = {"partitioner": type(partitioner).__name__}
    if count is not None:
        facts["num_partitions"] = count
    return facts


def _looks_like_partitioner(obj: object) -> bool:
    kind = type(obj)
    return hasattr(kind, "load_partition") and hasattr(kind, "num_partitions")


@hookimpl
def telemetry_collect(call: TrackedCall) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    args = call.arguments
    owner = _state(args["self"]) if "self" in args else {}

    dataset = args.get("dataset", owner.get("_dataset_name"))
    if isinstance(dataset, str):
        facts["dataset_name"] = dataset_label(dataset)
    subset = args.get("subset", owner.get("_subset"))
    if isinstance(subset, str):
        facts["subset"] = subset[:MAX_NAME]
    split = args.get("split")
    if isinstance(split, str):
        facts["split"] = split[:MAX_NAME]

    partitioners = args.get("partitioners", owner.get("_partitioners"))
    if isinstance(partitioners, Mapping):
        described = {
            str(name)[:MAX_NAME]: describe_partitioner(p) for name, p in partitioners.items()
        }
        facts["partitioners"] = described
        chosen = split if isinstance(split, str) else None
        if chosen is None and len(described) == 1:
            chosen = next(iter(described))
        if chosen in described:
            facts.update(described[chosen])

    if "partitioner" in args:
        facts.update(describe_partitioner(args["partitioner"]))
    elif "self" in args and _looks_like_partitioner(args["self"]):
        facts.update(describe_partitioner(args["self"]))
    count = _count(args.get("num_partitions"))
    if count is not None:
        facts["num_partitions"] = count

    facts["outcome"] = call.outcome
    return facts
