"""The ``version`` collector: owner distribution by name, by file list, or none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flwr_datasets_telemetry import __version__, _runtime
from flwr_datasets_telemetry._call import TrackedCall
from flwr_datasets_telemetry.collectors import version


def test_owner_by_distribution_name() -> None:
    assert version.owner("pluggy._hooks") is not None
    assert version.owner("pluggy._hooks")[0] == "pluggy"  # type: ignore[index]
    assert version.owner("flwr_datasets_telemetry.cli") == ("flwr-datasets-telemetry", __version__)


def test_owner_under_another_import_name() -> None:
    import cpuinfo  # noqa: F401 - the module must be imported for its file to be known

    name, _ = version.owner("cpuinfo") or ("", "")
    assert name == "py-cpuinfo"


def test_a_local_module_has_no_owner_and_costs_no_scan() -> None:
    version._distributions_by_package.cache_clear()
    assert version.owner("tests.fake_flwr_datasets") is None
    assert version.owner("__main__") is None
    assert version.owner(None) is None
    assert version._distributions_by_package.cache_info().currsize == 0


def test_payload_section() -> None:
    facts = version.telemetry_collect(TrackedCall("e", "pluggy"))
    assert facts["package_name"] == "pluggy"
    assert facts["telemetry_version"] == __version__


def test_standard_library_calls_that_import_as_they_go_hold_the_fork_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sysconfig.get_paths`` imports ``_sysconfigdata`` under a lock of its own (3.12),
    `importlib.metadata` imports the `email` parser: a host's fork in the middle would
    leave its child that lock held for ever. The guard makes the fork wait instead."""
    import sysconfig
    from importlib import metadata

    held: list[str] = []

    def watching(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if _runtime.IMPORT_GUARD.locked():
                held.append(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(sysconfig, "get_paths", watching("get_paths", sysconfig.get_paths))
    monkeypatch.setattr(metadata, "distribution", watching("distribution", metadata.distribution))
    monkeypatch.setattr(
        metadata,
        "packages_distributions",
        watching("packages_distributions", metadata.packages_distributions),
    )
    for cached in (version.owner, version._install_folders, version._distributions_by_package):
        cached.cache_clear()
    try:
        assert version.owner("cpuinfo") is not None  # an import name unlike its distribution's
    finally:
        for cached in (version.owner, version._install_folders, version._distributions_by_package):
            cached.cache_clear()
    assert sorted(set(held)) == ["distribution", "get_paths", "packages_distributions"]
    assert not _runtime.IMPORT_GUARD.locked()
