"""The ``version`` collector: owner distribution by name, by file list, or none."""

from __future__ import annotations

from flwr_datasets_telemetry import __version__
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
