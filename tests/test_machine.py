"""`_machine` gives `platform`'s answers without importing it."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator

import pytest

from flwr_datasets_telemetry import _machine, _runtime
from flwr_datasets_telemetry.collectors import platform as platform_collector


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    _machine.uname.cache_clear()
    yield
    _machine.uname.cache_clear()


def expected_uname() -> tuple[str, str, str, str]:
    system = platform.uname()
    return system.system, system.node, system.release, system.machine


def test_the_same_answers_as_the_platform_module() -> None:
    assert tuple(_machine.uname()) == expected_uname()
    assert _machine.python_implementation() == platform.python_implementation()
    assert _machine.python_version() == platform.python_version()


def test_the_collector_reports_what_platform_says() -> None:
    assert platform_collector.facts() == {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
    }


def test_without_os_uname_platform_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no `os.uname`."""
    expected = expected_uname()
    monkeypatch.delattr(os, "uname")
    assert tuple(_machine.uname()) == expected


@pytest.mark.parametrize("where", ["android", "ios"])
def test_where_platform_says_more_than_os_uname_platform_answers(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Since 3.13, `platform` names Android and iOS and their release, not the kernel;
    asked with the fork guard held (on Android it imports `ctypes`)."""
    guarded: list[bool] = []

    def uname() -> platform.uname_result:
        guarded.append(_runtime.IMPORT_GUARD.locked())
        return platform.uname_result("iOS", "n", "17.0", "", "arm64")

    monkeypatch.setattr(sys, "platform", where)
    monkeypatch.setattr(platform, "uname", uname)
    assert tuple(_machine.uname()) == ("iOS", "n", "17.0", "arm64")
    assert guarded == [True]


def test_unknown_fields_are_blank_as_platform_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        os, "uname", lambda: os.uname_result(("Linux", "n", "unknown", "#1", "unknown"))
    )
    assert tuple(_machine.uname()) == ("Linux", "n", "", "")


def test_an_interpreter_it_does_not_name_is_named_by_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.implementation, "name", "graalpy")
    assert _machine.python_implementation() == platform.python_implementation()


@pytest.mark.parametrize(
    "version",
    [
        "3.14 (main, Nov 28 2026, 10:00:00) [GCC 12.2.0]",
        "3.13.0rc1 (main, Nov 28 2026, 10:00:00) [GCC 12.2.0]",
        "3.14.0a1+ (heads/main:0123abc, Nov 28 2026, 10:00:00) [GCC 12.2.0]",
    ],
)
def test_versions_read_as_platform_reads_them(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(sys, "version", version)
    assert _machine.python_version() == platform.python_version()


def test_a_distributor_s_banner_after_the_version_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "version", "3.11.7 | packaged by conda-forge | (main) [GCC]")
    assert _machine.python_version() == "3.11.7"
