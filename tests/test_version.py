"""The ``version`` collector: owner distribution by name, by file list, or none."""

from __future__ import annotations

import json

from flwr_datasets_telemetry import __version__
from flwr_datasets_telemetry._call import TrackedCall
from flwr_datasets_telemetry.collectors import version

from .helpers import run_python


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


def test_look_ups_import_nothing_the_fork_guard_did_not_cover() -> None:
    """``sysconfig.get_paths`` imports ``_sysconfigdata`` under a lock of its own (3.12),
    `importlib.metadata` the `email` parser (and on 3.13 `csv`) as it goes: a host's
    fork in the middle would leave its child that lock held for ever. So `get_paths`
    (quick) runs with the guard held, and the metadata look-ups — which may read for a
    second, too long for a fork to wait — find what they import imported under it."""
    run = run_python(
        """
import json, sys
import cpuinfo  # an import name unlike its distribution's (py-cpuinfo)
from flwr_datasets_telemetry import _runtime
from flwr_datasets_telemetry.collectors import version
import sysconfig
from importlib import metadata
guarded, unguarded = {}, []
class Watcher:
    def find_spec(self, name, path=None, target=None):
        if name not in sys.modules and not _runtime.IMPORT_GUARD.locked():
            unguarded.append(name)
        return None
sys.meta_path.insert(0, Watcher())
def watching(name, real):
    def call(*args, **kwargs):
        guarded[name] = _runtime.IMPORT_GUARD.locked()
        return real(*args, **kwargs)
    return call
sysconfig.get_paths = watching("get_paths", sysconfig.get_paths)
metadata.packages_distributions = watching("packages", metadata.packages_distributions)
found = version.owner("cpuinfo")
print(json.dumps([found, guarded, unguarded]))
""",
        {},
    )
    assert run.returncode == 0, run.stderr
    found, guarded, unguarded = json.loads(run.stdout)
    assert found[0] == "py-cpuinfo"
    assert guarded == {"get_paths": True, "packages": False}
    assert unguarded == []
