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
from typing import TYPE_CHECKING, Any, Final

from .._call import ObjectState
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._call import TrackedCall

LOCAL_DATASET: Final = "<local>"
MAX_NAME: Final = 96
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def dataset_label(name: str, folder: str | None = None) -> str:
    """``name`` if it can only be a Hub id, else the local-dataset placeholder.

    ``folder`` is the caller's working folder at the call: a relative path is
    checked there, not wherever the process is when the event is built.
    """
    if len(name) > MAX_NAME or not _HUB_ID.fullmatch(name):
        return LOCAL_DATASET
    try:
        if os.path.lexists(name) or (folder and os.path.lexists(os.path.join(folder, name))):
            return LOCAL_DATASET
    except (OSError, ValueError):
        return LOCAL_DATASET
    return name


def _state(obj: object) -> Mapping[str, Any]:
    """The attributes a snapshot kept of an object (see `ObjectState`)."""
    return obj.attributes if type(obj) is ObjectState else {}


def _count(value: object) -> int | None:
    return value if type(value) is int else None


def describe_partitioner(partitioner: object) -> dict[str, Any]:
    """Class name and partition count of a partitioner (or of an int shorthand)."""
    if type(partitioner) is int:
        return {"partitioner": "IidPartitioner", "num_partitions": partitioner}
    if type(partitioner) is not ObjectState:
        return {}
    state = partitioner.attributes
    count = _count(state.get("_num_partitions", state.get("num_partitions")))
    facts: dict[str, Any] = {"partitioner": partitioner.type_name}
    if count is not None:
        facts["num_partitions"] = count
    return facts


def _looks_like_partitioner(obj: object) -> bool:
    return type(obj) is ObjectState and {"load_partition", "num_partitions"}.issubset(
        obj.class_attributes
    )


@hookimpl
def telemetry_collect(call: TrackedCall) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    args = call.arguments
    owner = _state(args["self"]) if "self" in args else {}

    dataset = args.get("dataset", owner.get("_dataset_name"))
    if type(dataset) is str:
        facts["dataset_name"] = dataset_label(dataset, call.folder)
    subset = args.get("subset", owner.get("_subset"))
    if type(subset) is str:
        facts["subset"] = subset[:MAX_NAME]
    split = args.get("split")
    if type(split) is str:
        facts["split"] = split[:MAX_NAME]

    partitioners = args.get("partitioners", owner.get("_partitioners"))
    if type(partitioners) is dict:
        described = {
            str(name)[:MAX_NAME]: describe_partitioner(p) for name, p in partitioners.items()
        }
        facts["partitioners"] = described
        chosen = split if type(split) is str else None
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
