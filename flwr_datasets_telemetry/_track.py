"""`track` and `event`: the caller's side, which must cost next to nothing.

A finished call is reduced to a key — the tracker, the outcome and the allow-listed
argument values (objects by weak reference, so a freed object's id can never be
mistaken for a new one) — and dropped if that key was handed over before. Only a new
key builds a `TrackedCall` and wakes the sender. Nothing here does I/O or raises.
"""

from __future__ import annotations

import functools
import sys

# `weakref.ref` itself, without the 1 ms `weakref` module import at start-up.
from _weakref import ref as weak_reference

from . import _runtime
from ._call import ARGUMENT_NAMES, SUCCESS, ArgumentPlan, TrackedCall

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping
    from typing import Any, Final, ParamSpec, Protocol, TypeVar, overload

    P = ParamSpec("P")
    R = TypeVar("R")
    T = TypeVar("T")

    DetailsFactory = Callable[..., Mapping[str, Any]]

    class TrackDecorator(Protocol):
        """What `track` returns: keeps the exact signature of what it decorates."""

        @overload
        def __call__(self, func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
        @overload
        def __call__(self, func: staticmethod[P, R], /) -> staticmethod[P, R]: ...
        @overload
        def __call__(self, func: Callable[P, R], /) -> Callable[P, R]: ...


_SCALARS = frozenset({int, float, bool, type(None), bytes})


#: Longer strings and bytes are remembered by length and hash, not kept alive.
_LONG: Final = 256
#: How a person stops a program: Ctrl-C, or a signal handler's ``sys.exit``. Raised
#: while our code runs on the caller's thread, they are the person's and pass through
#: (except over the host's own exception); anything else raised there is swallowed.
STOPPING: Final = (KeyboardInterrupt, SystemExit)


def _token(value: object) -> Hashable:
    kind = type(value)
    if kind is str:
        return value if len(value) <= _LONG else (kind, len(value), hash(value))  # type: ignore[arg-type]
    if kind in _SCALARS:
        if kind is bytes and len(value) > _LONG:  # type: ignore[arg-type]
            return (kind, len(value), hash(value))  # type: ignore[arg-type]
        return (kind, value)
    return weak_reference(value)


class _Tracker:
    """What one decorated function needs at call time, worked out at decoration.

    It keeps `_runtime.STATE` itself, not the module: at interpreter shutdown a host
    ``__del__`` may call a tracked function after module globals were cleared.
    """

    __slots__ = ("details", "event_type", "indices", "keywords", "module", "plan", "state")

    def __init__(
        self, event_type: str, func: Callable[..., Any], details: DetailsFactory | None
    ) -> None:
        self.event_type = event_type
        self.module: str | None = getattr(func, "__module__", None)
        self.plan = plan = ArgumentPlan.for_function(func)
        self.indices = tuple(index for index, _ in plan.positions)
        self.keywords = tuple(sorted(plan.names))
        self.details = details
        self.state = _runtime.STATE

    def repeat_key(self) -> Hashable | None:
        """The key of every successful call, where no argument of the function counts
        (none is allow-listed and there are no ``details``); else ``None``.

        With it, the wrapper recognises a repeat by one dictionary look-up instead of
        calling `record`: a function called in a tight loop pays a third as much.
        `record` builds the very same key (a test keeps them equal).
        """
        if self.indices or self.keywords or self.details is not None:
            return None
        return (self, SUCCESS)

    def record(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], error: BaseException | None
    ) -> None:
        """Hand the finished call over, unless the same call was handed over before.

        Building the key is the cost of every call. Never raises, but for
        `STOPPING` (see there).
        """
        try:
            runtime = self.state.current
            if runtime is None:
                return
            outcome = SUCCESS if error is None else type(error).__name__
            details = None if self.details is None else dict(self.details(*args, **kwargs))
            parts: list[Hashable] = [self, outcome]
            key: Hashable | None = None
            try:
                count = len(args)
                for index in self.indices:
                    if index < count:
                        value = args[index]
                        # `_token`, inlined for the common short string (a split, a
                        # dataset name): the cost of every call. A test keeps them equal.
                        if type(value) is str and len(value) <= _LONG:
                            parts.append(value)
                        else:
                            parts.append(_token(value))
                if kwargs:
                    for name in self.keywords:
                        if name in kwargs:
                            parts.append(name)
                            parts.append(_token(kwargs[name]))
                if details:
                    parts.extend([(name, _token(value)) for name, value in details.items()])
                key = tuple(parts)
                if key in runtime.seen_calls:
                    return
            except TypeError:  # an unhashable or un-weakref-able value: no shortcut
                key = None
            arguments = self.plan.pick(args, kwargs)
            call = TrackedCall.handed_over(
                self.event_type, self.module, arguments, outcome, details
            )
            runtime.submit(call, key)
        except STOPPING:
            raise
        except BaseException:  # `details` is the maintainer's code: GeneratorExit, ...
            pass


def track(event_type: str, *, details: DetailsFactory | None = None) -> TrackDecorator:
    """Emit one ``event_type`` event each time the decorated callable finishes.

    The wrapper returns what the function returns and re-raises the very exception it
    raised; only the outcome (``"success"`` or the exception's class name) is recorded.
    ``details``, if given, is called with the same arguments on the caller's thread
    and must return a mapping of extra event details: keep it cheap.
    """

    def decorate(func: Any) -> Any:
        if isinstance(func, (classmethod, staticmethod)):
            return type(func)(decorate(func.__func__))
        tracker = _Tracker(event_type, func, details)
        record = tracker.record
        state = tracker.state
        import inspect  # at decoration, not at our import: hosts import it anyway

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    result = await func(*args, **kwargs)
                except BaseException as error:
                    try:
                        record(args, kwargs, error)
                    except BaseException:  # the host's own error wins, whatever ours
                        pass
                    raise
                record(args, kwargs, None)
                return result

            return async_wrapper

        repeat = tracker.repeat_key()  # None: a call's key depends on its arguments

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if state.current is None:  # disabled: one attribute look-up, nothing else
                return func(*args, **kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException as error:
                try:
                    record(args, kwargs, error)
                except BaseException:  # the host's own error wins, whatever ours
                    pass
                raise
            if repeat is not None:  # then a repeat costs one look-up, not `record`
                runtime = state.current
                if runtime is not None and repeat in runtime.seen_calls:
                    return result
            record(args, kwargs, None)
            return result

        return wrapper

    return decorate


def event(event_type: str, details: Mapping[str, Any] | None = None) -> None:
    """Emit one event by hand, for code that cannot be decorated.

    The package that owns the event is the module that calls this function.
    """
    if _runtime.STATE.current is None:
        return
    try:
        module = sys._getframe(1).f_globals.get("__name__")
    except Exception:
        module = None
    emit(event_type, module, details=details)


def emit(
    event_type: str,
    module: str | None,
    *,
    arguments: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """Hand one event over on behalf of ``module``; ``False`` if telemetry is off here.

    ``arguments`` are treated like a tracked call's allow-listed arguments (only
    `ARGUMENT_NAMES` are kept), ``details`` like the maintainer's details. For adapters
    such as `compat`; never raises.
    """
    runtime = _runtime.STATE.current
    if runtime is None:
        return False
    try:
        key: Hashable | None
        try:  # the de-duplication key, built flat: this is the cost of a repeat
            parts: list[Hashable] = [event_type, module]
            if details:
                for name, value in details.items():
                    parts.append(name)
                    parts.append(_token(value))
            if arguments:
                parts.append(None)  # separates details from arguments
                for name, value in arguments.items():
                    parts.append(name)
                    parts.append(_token(value))
            key = tuple(parts)
            if key in runtime.seen_calls:
                return True
        except TypeError:
            key = None
        picked = {k: v for k, v in arguments.items() if k in ARGUMENT_NAMES} if arguments else {}
        extra = dict(details) if details else None
        runtime.submit(TrackedCall.handed_over(event_type, module, picked, SUCCESS, extra), key)
    except STOPPING:
        raise
    except BaseException:  # the caller's mapping: whatever its `items` raises
        pass
    return True


__all__ = ["event", "track"]
