"""`track` and `event`: the wrapped call is unchanged, and each call is one event."""

from __future__ import annotations

import asyncio
import functools
import inspect
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from flwr_datasets_telemetry import compat, event, track
from flwr_datasets_telemetry.testing import CapturedEvents

from .fake_flwr_datasets import FederatedDataset


@track("add")
def add(a: int, b: int = 2, *, scale: int = 1) -> int:
    """Add two numbers."""
    return (a + b) * scale


class Boom(Exception):
    pass


@track("explode")
def explode(message: str) -> None:
    raise Boom(message)


class Service:
    @track("method")
    def method(self, x: int) -> int:
        return x + 1

    @track("class_method_outer")
    @classmethod
    def outer_classmethod(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @classmethod
    @track("class_method_inner")
    def inner_classmethod(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @track("static_method")
    @staticmethod
    def static(x: int) -> int:
        return x * 2


@track("async")
async def fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x * 3


def test_return_value_and_metadata_are_the_function_s(captured: CapturedEvents) -> None:
    assert add(1, 2, scale=3) == 9
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add.__wrapped__.__name__ == "add"  # type: ignore[attr-defined]
    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2, *, scale: 'int' = 1) -> 'int'"
    assert [p["event_type"] for p in captured.payloads()] == ["add"]


def test_the_very_same_exception_propagates_with_its_traceback(captured: CapturedEvents) -> None:
    with pytest.raises(Boom) as info:
        explode("do not send me")
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "explode"
    details = captured.details("explode")
    assert details == [{"outcome": "Boom"}]
    assert "do not send me" not in repr(captured.payloads())


def test_methods_classmethods_staticmethods(captured: CapturedEvents) -> None:
    service = Service()
    assert service.method(1) == 2
    assert Service.outer_classmethod(1) == "Service:1"
    assert Service.inner_classmethod(2) == "Service:2"
    assert service.static(4) == 8
    assert Service.static(5) == 10
    assert isinstance(inspect.getattr_static(Service, "outer_classmethod"), classmethod)
    assert isinstance(inspect.getattr_static(Service, "static"), staticmethod)
    types = sorted({p["event_type"] for p in captured.payloads()})
    assert types == ["class_method_inner", "class_method_outer", "method", "static_method"]


def test_async_functions_stay_coroutine_functions(captured: CapturedEvents) -> None:
    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch(2)) == 6
    assert [p["event_type"] for p in captured.payloads()] == ["async"]


def test_async_exception_and_cancellation_outcomes(captured: CapturedEvents) -> None:
    @track("async_fail")
    async def fail() -> None:
        raise KeyError("secret")

    with pytest.raises(KeyError):
        asyncio.run(fail())
    assert captured.details("async_fail") == [{"outcome": "KeyError"}]


def test_one_event_per_distinct_call_and_repeats_are_sent_once(captured: CapturedEvents) -> None:
    dataset = FederatedDataset(dataset="mnist", partitioners={"train": 10, "test": 2})
    for partition_id in range(50):
        dataset.load_partition(partition_id, "train")
    dataset.load_partition(0, "test")
    details = captured.details("load_partition")
    assert [d["split"] for d in details] == ["train", "test"]


def test_details_factory_receives_the_call_arguments(captured: CapturedEvents) -> None:
    @track("with_details", details=lambda n, **_: {"size": "big" if n > 10 else "small"})
    def work(n: int, *, label: str = "") -> int:
        return n

    work(3)
    work(30, label="x")
    work(4)
    assert [d["size"] for d in captured.details("with_details")] == ["small", "big"]


def test_a_raising_details_factory_is_ignored(captured: CapturedEvents) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError

    @track("broken_details", details=broken)
    def work() -> int:
        return 7

    assert work() == 7


class NotAnException(BaseException):
    """A `BaseException` that is neither of the two a person stops a program with."""


def details_raising(raised: type[BaseException]) -> Callable[..., dict[str, Any]]:
    def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise raised

    return broken


@pytest.mark.parametrize("raised", [GeneratorExit, NotAnException])
def test_a_details_factory_raising_any_base_exception_costs_only_the_event(
    captured: CapturedEvents, raised: type[BaseException]
) -> None:
    @track("broken_details", details=details_raising(raised))
    def work() -> int:
        return 7

    assert work() == 7
    assert captured.payloads() == []


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt, GeneratorExit, NotAnException])
def test_the_host_s_own_exception_wins_over_anything_the_details_factory_raises(
    captured: CapturedEvents, raised: type[BaseException]
) -> None:
    broken = details_raising(raised)

    @track("broken_details", details=broken)
    def work() -> None:
        raise Boom("the host's")

    @track("broken_details", details=broken)
    async def work_async() -> None:
        raise Boom("the host's, async")

    with pytest.raises(Boom, match=r"the host's$"):
        work()
    with pytest.raises(Boom, match="the host's, async"):
        asyncio.run(work_async())


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_ctrl_c_or_sys_exit_while_details_run_are_the_person_s(
    captured: CapturedEvents, raised: type[BaseException]
) -> None:
    """How a person stops a program (a signal handler's, as likely as the factory's):
    never swallowed."""

    @track("interrupted", details=details_raising(raised))
    def work() -> int:
        return 7

    with pytest.raises(raised):
        work()


class HostileMapping(dict[str, Any]):
    def items(self) -> Any:
        raise GeneratorExit

    def get(self, *_: Any) -> Any:
        raise NotAnException


def test_a_details_mapping_raising_any_base_exception_never_reaches_the_caller(
    captured: CapturedEvents,
) -> None:
    event("hostile", HostileMapping(dataset="mnist"))
    compat.event(compat.EventType.LOAD_PARTITION_CALLED, HostileMapping(dataset="mnist"))
    event("after")
    assert "after" in [p["event_type"] for p in captured.payloads()]


def test_event_by_hand(captured: CapturedEvents) -> None:
    event("LOAD_SPLIT_CALLED", {"dataset_name": "mnist", "split": "train"})
    event("LOAD_SPLIT_CALLED", {"dataset_name": "mnist", "split": "train"})
    event("LOAD_SPLIT_CALLED", {"dataset_name": "mnist", "split": "test"})
    details = captured.details("LOAD_SPLIT_CALLED")
    assert [d["split"] for d in details] == ["train", "test"]
    assert all(d["outcome"] == "success" for d in details)


def test_unhashable_arguments_still_produce_events(captured: CapturedEvents) -> None:
    @track("unhashable")
    def build(partitioners: dict[str, int]) -> int:
        return len(partitioners)

    build({"train": 3})
    build({"train": 3})
    build({"train": 5})
    counts = [d["num_partitions"] for d in captured.details("unhashable")]
    assert counts == [3, 5]


def test_a_freed_object_is_not_mistaken_for_a_new_one(captured: CapturedEvents) -> None:
    for name in ("mnist", "cifar10", "femnist"):
        dataset = FederatedDataset(dataset=name, partitioners={"train": 2})
        dataset.load_split("train")
        captured.payloads()  # built while the object lives; then its id may be reused
        del dataset
    names = [d["dataset_name"] for d in captured.details("load_split")]
    assert names == ["mnist", "cifar10", "femnist"]


def test_wrapping_keeps_functools_partial_and_lambdas_working(captured: CapturedEvents) -> None:
    tracked = track("partial")(functools.partial(add, 1))
    assert tracked(5) == 6
    assert captured.details("partial") == [{"outcome": "success"}]


def test_an_inactive_runtime_records_nothing(captured: CapturedEvents) -> None:
    from flwr_datasets_telemetry import _runtime

    capturing, _runtime.STATE.current = _runtime.STATE.current, None
    try:
        assert add(1) == 3
        event("by_hand")
    finally:
        _runtime.STATE.current = capturing
    assert captured.payloads() == []


def test_a_long_string_or_bytes_argument_is_not_kept_by_the_repeat_memory() -> None:
    import gc

    from flwr_datasets_telemetry._track import _token

    big = b"x" * 100_000
    text = "y" * 100_000
    copies = (bytes(bytearray(big)), text.encode().decode())
    for value, copy in zip((big, text), copies, strict=True):
        token = _token(value)
        assert all(item is not value for item in gc.get_referents(token))
        assert token == _token(copy)  # an equal value is a repeat
    assert _token("mnist") == "mnist"


def test_the_inlined_repeat_key_equals_token(captured: CapturedEvents) -> None:
    from flwr_datasets_telemetry import _runtime
    from flwr_datasets_telemetry._track import _token

    @track("keys")
    def load(dataset: object, split: object) -> None:
        pass

    obj = Service()
    samples: list[object] = ["train", "x" * 1000, b"raw", 3, 2.5, None, True, obj]
    for value in samples:
        load(value, split=value)
    runtime = _runtime.STATE.current
    assert runtime is not None
    keys = [k for k in runtime.seen_calls if isinstance(k, tuple) and k[0].event_type == "keys"]
    expected = [(_token(v), "split", _token(v)) for v in samples]
    assert [k[2:] for k in keys] == expected


def test_a_function_whose_arguments_do_not_count_recognises_repeats_by_its_key(
    captured: CapturedEvents,
) -> None:
    """The shortcut wrapper (no allow-listed argument, no ``details``) looks up the key
    `record` builds, so repeats are dropped, failures still count, and a forgotten key
    (the memory is cleared when full) is handed over again."""
    from flwr_datasets_telemetry import _runtime
    from flwr_datasets_telemetry._track import _Tracker

    @track("loop")
    def step(n: int, *, scale: int = 1) -> int:
        if n < 0:
            raise Boom("negative")
        return n * scale

    assert [step(n, scale=2) for n in range(100)] == [2 * n for n in range(100)]
    with pytest.raises(Boom):
        step(-1)
    with pytest.raises(Boom):
        step(-2)
    assert step(5) == 5
    runtime = _runtime.STATE.current
    assert runtime is not None
    keys = [k for k in runtime.seen_calls if isinstance(k, tuple) and k[0].event_type == "loop"]
    assert keys == [(keys[0][0], "success"), (keys[0][0], "Boom")]
    assert keys[0] == keys[0][0].repeat_key()  # the shortcut's key is record's key
    assert [d["outcome"] for d in captured.details("loop")] == ["success", "Boom"]
    runtime.seen_calls.clear()
    step(6)  # handed over again (the pipeline then drops the identical payload)
    assert keys[0] in runtime.seen_calls

    def counted(dataset: str) -> None:
        pass

    assert _Tracker("x", counted, None).repeat_key() is None  # an argument that counts
    assert _Tracker("x", step, lambda *_: {}).repeat_key() is None  # details may differ


def test_the_shortcut_wrapper_sees_an_opt_out_made_during_the_call(
    captured: CapturedEvents,
) -> None:
    from flwr_datasets_telemetry import _runtime

    @track("opted_out_during")
    def step() -> None:
        _runtime.STATE.current = None  # what `disable()` does, from inside the call

    capturing = _runtime.STATE.current
    try:
        step()
    finally:
        _runtime.STATE.current = capturing
    assert captured.payloads() == []


def test_allow_listed_names_passed_through_var_keyword_arguments_count(
    captured: CapturedEvents,
) -> None:
    """``def load(**kwargs)`` called with ``dataset=...``: the name is a call argument
    like any other (it was never seen, and every later call counted as a repeat)."""

    @track("var_keyword")
    def load(*args: object, **kwargs: object) -> None:
        pass

    load(dataset="mnist", trust_remote_code=True)
    load(dataset="cifar10", split="test")
    load(dataset="cifar10", split="test")
    details = captured.details("var_keyword")
    assert [(d.get("dataset_name"), d.get("split")) for d in details] == [
        ("mnist", None),
        ("cifar10", "test"),
    ]


def test_a_keyword_through_var_keyword_never_hides_the_positional_only_argument(
    captured: CapturedEvents,
) -> None:
    @track("positional_only")
    def load(dataset: str, /, **kwargs: object) -> None:
        pass

    load("mnist", dataset="a keyword meant for someone else")
    assert [d["dataset_name"] for d in captured.details("positional_only")] == ["mnist"]
