"""What a tracked call hands to the collectors: `TrackedCall`, and the allow list.

Only the arguments named in `ARGUMENT_NAMES` (and ``self``) ever leave the caller's
frame; everything else a call receives — a ``partition_id``, a path, a token — is never
seen by any collector, built-in or third-party.

No host object is kept, not even until the event is built: the caller's thread takes a
small `snapshot` of each argument (scalars, plain containers, and for any other object
its class name and instance attributes, depth- and size-capped). A host object is freed
as soon as the host drops it, its finalizer runs on the host's own thread, and no host
code ever runs on the sender thread.
"""

from __future__ import annotations

import os
from itertools import islice

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Final

#: Flower Datasets' own argument names whose values collectors may read.
ARGUMENT_NAMES: Final = frozenset(
    {"dataset", "subset", "split", "partitioners", "partitioner", "num_partitions"}
)

#: Outcome of a call that returned normally.
SUCCESS: Final = "success"

#: How deep a snapshot goes: ``self`` -> ``_partitioners`` -> a partitioner -> its count.
SNAPSHOT_DEPTH: Final = 4
#: Items kept per container or object, and values per snapshot in all.
SNAPSHOT_ITEMS: Final = 32
SNAPSHOT_BUDGET: Final = 256
#: Longer strings are cut (a copy): a huge host string is not kept alive.
SNAPSHOT_STRING: Final = 256

_NUMBERS: Final = frozenset({int, float, bool, type(None)})


class ObjectState:
    """What a snapshot keeps of a host object: its class and its own attributes.

    ``attributes`` are snapshots themselves; the class is described by name (and, for
    static look-ups, `kind`), never kept alive or called.
    """

    __slots__ = ("attributes", "class_attributes", "type_name")

    def __init__(
        self, type_name: str, attributes: dict[str, Any], class_attributes: frozenset[str]
    ) -> None:
        #: ``type(obj).__name__``, e.g. ``"IidPartitioner"``.
        self.type_name = type_name
        #: The instance ``__dict__``, snapshotted (at most `SNAPSHOT_ITEMS` entries).
        self.attributes = attributes
        #: Names defined on the class and its bases (methods, properties...).
        self.class_attributes = class_attributes

    def __repr__(self) -> str:
        return f"<{self.type_name} {sorted(self.attributes)!r}>"


_class_attributes_cache: dict[str, frozenset[str]] = {}


def _class_attributes(kind: type) -> frozenset[str]:
    key = f"{kind.__module__}.{kind.__qualname__}:{id(kind)}"
    names = _class_attributes_cache.get(key)
    if names is None:
        names = frozenset(
            name
            for klass in type.__dict__["__mro__"].__get__(kind)
            for name in type.__dict__["__dict__"].__get__(klass)
        )
        if len(_class_attributes_cache) < SNAPSHOT_BUDGET:
            _class_attributes_cache[key] = names
    return names


def _snapshot(value: object, depth: int, budget: list[int]) -> object:
    budget[0] -= 1
    kind = type(value)
    if kind is str:
        return value if len(value) <= SNAPSHOT_STRING else value[:SNAPSHOT_STRING]  # type: ignore[arg-type, index]
    if kind in _NUMBERS:
        return value
    if depth <= 0 or budget[0] <= 0:
        return None
    if kind is dict:
        items = islice(value.items(), SNAPSHOT_ITEMS)  # type: ignore[attr-defined]
        return {k: _snapshot(v, depth - 1, budget) for k, v in items if type(k) is str}
    if kind is list or kind is tuple:
        return [_snapshot(v, depth - 1, budget) for v in islice(value, SNAPSHOT_ITEMS)]  # type: ignore[call-overload]
    try:
        attributes = object.__getattribute__(value, "__dict__")
    except AttributeError:
        attributes = {}
    if type(attributes) is not dict:
        attributes = {}
    return ObjectState(
        kind.__name__,
        {
            k: _snapshot(v, depth - 1, budget)
            for k, v in islice(attributes.items(), SNAPSHOT_ITEMS)
            if type(k) is str
        },
        _class_attributes(kind),
    )


def snapshot(values: Mapping[str, Any], depth: int = SNAPSHOT_DEPTH) -> dict[str, Any]:
    """A copy of ``values`` that keeps no host object alive (see the module docstring)."""
    budget = [SNAPSHOT_BUDGET]
    return {name: _snapshot(value, depth, budget) for name, value in values.items()}


def working_folder() -> str | None:
    """The caller's working folder now (a relative dataset path is relative to it)."""
    try:
        return os.getcwd()
    except OSError:  # deleted, or unreachable
        return None


class TrackedCall:
    """One finished call (or one `event`), as the collectors see it.

    Collectors run on the background thread, after the call returned. ``arguments``
    holds snapshots: strings, numbers, plain lists and dicts, and `ObjectState` for
    any other object (``self`` included).
    """

    __slots__ = ("arguments", "details", "event_type", "folder", "module", "outcome")

    def __init__(  # noqa: PLR0913 - one keyword per fact
        self,
        event_type: str,
        module: str | None,
        arguments: Mapping[str, Any] | None = None,
        outcome: str = SUCCESS,
        details: Mapping[str, Any] | None = None,
        *,
        folder: str | None = None,
    ) -> None:
        #: The name given to ``track``/``event``, e.g. ``"load_partition"``.
        self.event_type = event_type
        #: ``__module__`` of the tracked function (or of the code calling `event`).
        self.module = module
        #: Allow-listed arguments by parameter name, plus ``self`` for methods.
        self.arguments: Mapping[str, Any] = arguments if arguments is not None else {}
        #: ``"success"`` or the class name of the exception the call raised.
        self.outcome = outcome
        #: Details the maintainer passed, through ``details=`` or `event`.
        self.details: Mapping[str, Any] = details if details is not None else {}
        #: The caller's working folder at the call, for the local-dataset rule only.
        self.folder = folder

    @classmethod
    def handed_over(
        cls,
        event_type: str,
        module: str | None,
        arguments: Mapping[str, Any],
        outcome: str,
        details: Mapping[str, Any] | None,
    ) -> TrackedCall:
        """A call as the caller's thread queues it: snapshots, no host object."""
        return cls(
            event_type,
            module,
            snapshot(arguments) if arguments else None,
            outcome,
            snapshot(details) if details else None,
            folder=working_folder(),
        )

    def __repr__(self) -> str:
        return (
            f"TrackedCall({self.event_type!r}, module={self.module!r}, "
            f"arguments={sorted(self.arguments)!r}, outcome={self.outcome!r})"
        )


class ArgumentPlan:
    """Where the allow-listed parameters of one function sit, worked out once."""

    __slots__ = ("names", "positions")

    def __init__(self, positions: tuple[tuple[int, str], ...], names: frozenset[str]) -> None:
        self.positions = positions
        self.names = names

    @classmethod
    def for_function(cls, func: Callable[..., Any]) -> ArgumentPlan:
        import inspect

        try:
            parameters = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            return cls((), frozenset())
        wanted = ARGUMENT_NAMES | {"self"}
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        positions = tuple(
            (index, p.name)
            for index, p in enumerate(parameters)
            if p.kind in positional and p.name in wanted
        )
        names = frozenset(
            p.name
            for p in parameters
            if p.kind is not inspect.Parameter.POSITIONAL_ONLY and p.name in ARGUMENT_NAMES
        )
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            names = frozenset(ARGUMENT_NAMES)  # ``**kwargs`` may carry any of them
        return cls(positions, names)

    def pick(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The allow-listed arguments of one call, by parameter name."""
        picked = {name: args[index] for index, name in self.positions if index < len(args)}
        if kwargs and self.names:
            for name in self.names.intersection(kwargs):
                # never over the function's own positional-only parameter of that name
                picked.setdefault(name, kwargs[name])
        return picked
