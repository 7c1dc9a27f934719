"""`track` keeps signatures for type checkers: this file is checked by ``mypy --strict``.

The ``assert_type`` calls are evaluated by mypy only; at run time the test checks that
the same objects still behave as the types promise.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from flwr_datasets_telemetry import track


@track("typed")
def typed(a: int, b: str = "x", *, flag: bool = False) -> list[str]:
    return [b] * a if not flag else []


@track("typed_async")
async def typed_async(n: int) -> float:
    return n / 2


class Partitioner:
    @track("method")
    def load_partition(self, partition_id: int) -> dict[str, int]:
        return {"id": partition_id}

    @track("class")
    @classmethod
    def create(cls, num_partitions: int) -> Partitioner:
        assert num_partitions > 0
        return cls()

    @track("static")
    @staticmethod
    def check(value: str) -> bool:
        return bool(value)


if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from typing_extensions import assert_type

    as_callable: Callable[[int, str], list[str]] = typed
    assert_type(typed(1, "y", flag=True), list[str])
    typed("not an int")  # type: ignore[arg-type]  # unused (an error) if the signature was lost
    typed(1, unknown=True)  # type: ignore[call-arg]
    coroutine: Coroutine[Any, Any, float] = typed_async(3)
    coroutine.close()
    typed_async("3")  # type: ignore[arg-type,unused-coroutine]
    Partitioner().load_partition("x")  # type: ignore[arg-type]
    assert_type(Partitioner().load_partition(1), dict[str, int])
    assert_type(Partitioner.create(3), Partitioner)
    assert_type(Partitioner.check("x"), bool)


def test_types_are_honoured_at_run_time() -> None:
    assert typed(2, "z") == ["z", "z"]
    assert asyncio.run(typed_async(3)) == 1.5
    assert Partitioner().load_partition(4) == {"id": 4}
    assert isinstance(Partitioner.create(3), Partitioner)
    assert Partitioner.check("x") is True
