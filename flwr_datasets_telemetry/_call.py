"""What a tracked call hands to the collectors: `TrackedCall`, and the allow list.

Only the arguments named in `ARGUMENT_NAMES` (and ``self``) ever leave the caller's
frame; everything else a call receives — a ``partition_id``, a path, a token — is never
seen by any collector, built-in or third-party.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing, dataclasses and inspect cost 30 ms at import: see `_track`
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Final

#: Flower Datasets' own argument names whose values collectors may read.
ARGUMENT_NAMES: Final = frozenset(
    {"dataset", "subset", "split", "partitioners", "partitioner", "num_partitions"}
)

#: Outcome of a call that returned normally.
SUCCESS: Final = "success"


class TrackedCall:
    """One finished call (or one `event`), as the collectors see it.

    Collectors run on the background thread, after the call returned: ``arguments``
    holds the live objects, so read them without calling into them.
    """

    __slots__ = ("arguments", "details", "event_type", "module", "outcome")

    def __init__(
        self,
        event_type: str,
        module: str | None,
        arguments: Mapping[str, Any] | None = None,
        outcome: str = SUCCESS,
        details: Mapping[str, Any] | None = None,
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
        return cls(positions, names)

    def pick(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The allow-listed arguments of one call, by parameter name."""
        picked = {name: args[index] for index, name in self.positions if index < len(args)}
        if kwargs and self.names:
            for name in self.names.intersection(kwargs):
                picked[name] = kwargs[name]
        return picked
