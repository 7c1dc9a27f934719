"""pytest plugin (entry point ``pytest11``): the ``telemetry_events`` fixture.

Inert unless a test asks for the fixture: importing this module imports nothing of
the package, so a test session that never uses it is not touched.

.. code-block:: python

    def test_load_partition_emits_one_event(telemetry_events):
        FederatedDataset(dataset="mnist", partitioners={"train": 10}).load_partition(0)
        (details,) = telemetry_events.details("load_partition")
        assert details["dataset_name"] == "mnist"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .testing import CapturedEvents


@pytest.fixture
def telemetry_events() -> Iterator[CapturedEvents]:
    """Every event of the test, built by the real collectors; nothing sent or written."""
    from .testing import capture_events

    with capture_events() as captured:
        yield captured
