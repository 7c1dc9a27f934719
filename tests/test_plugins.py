"""Entry-point plugins, end to end with real installed distributions."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import hookspecs

from .distributions import pip_install, write_distribution
from .helpers import REPO, Run, recorded_outcomes, run_python
from .schema import validated
from .servers import Endpoint

PROGRAM = """
import json, sys, threading
import flwr_datasets_telemetry as t
from tests.fake_flwr_datasets import FederatedDataset
{before}
FederatedDataset(dataset="mnist", partitioners={{"train": 3}}).load_partition(0, "train")
flushed = t.flush(10)
print(json.dumps({{"flushed": flushed, "threads": threading.active_count(),
                   "modules": sorted(m for m in sys.modules if m.startswith(("acme", "requests")))}}))
"""


@pytest.fixture(scope="session")
def noop_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install("noop-plugin", tmp_path_factory.mktemp("noop-site"))


@pytest.fixture(scope="session")
def accelerators_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install("accelerators-plugin", tmp_path_factory.mktemp("accelerators-site"))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def run_with(
    sites: list[Path], endpoint: Endpoint, before: str = "", **env: str
) -> tuple[Run, dict[str, Any]]:
    path = os.pathsep.join([*map(str, sites), str(REPO)])
    run = run_python(
        PROGRAM.format(before=before),
        {
            "PYTHONPATH": path,
            "FLWR_TELEMETRY_ENDPOINT": endpoint.url,
            "FLWR_TELEMETRY_DISABLE_COLLECTORS": env.pop("blocked", "hardware"),
            **env,
        },
    )
    assert run.returncode == 0, run.stderr
    return run, json.loads(run.stdout.splitlines()[-1])


def test_the_example_collector_reports_frameworks_in_use(
    accelerators_site: Path, endpoint: Endpoint
) -> None:
    fake_torch = """
import types
torch = types.ModuleType("torch")
torch.__version__ = "9.9"
torch.version = types.SimpleNamespace(cuda="12.4")
torch.cuda = types.SimpleNamespace(device_count=lambda: 2)
sys.modules["torch"] = torch
"""
    run, _ = run_with([accelerators_site], endpoint, before=fake_torch)
    (payload,) = endpoint.payloads()
    assert payload["context"]["accelerators"] == {
        "torch": {"version": "9.9", "cuda_version": "12.4", "cuda_devices": 2},
        "jax": None,
        "tensorflow": None,
    }
    assert run.stderr == ""


def test_the_no_op_plugin_turns_everything_off(
    noop_site: Path, accelerators_site: Path, endpoint: Endpoint, home: Path
) -> None:
    sites = [noop_site, accelerators_site]
    run, facts = run_with(sites, endpoint)
    assert facts == {"flushed": True, "threads": 1, "modules": []}
    assert endpoint.connections == 0
    assert not home.exists()
    assert run.stderr == ""
    status = run_python(
        "from flwr_datasets_telemetry.cli import main; main(['status', '--json'])",
        {"PYTHONPATH": os.pathsep.join(map(str, [*sites, REPO]))},
    )
    state = json.loads(status.stdout)
    assert state["enabled"] is False
    assert state["reason"] == "by plugin 'noop' (flwr-datasets-telemetry-noop 1.0.0)"
    assert state["plugins"]["accelerators"] == "flwr-datasets-telemetry-accelerators 1.0.0"


@pytest.mark.parametrize(
    "broken",
    [b"[flwr_datasets_telemetry]\nno equals sign here\n", b"[flwr_datasets_telemetry]\n\xff\xfe\n"],
    ids=["malformed", "undecodable"],
)
def test_a_broken_distribution_never_hides_the_no_op_plugin(
    broken: bytes, noop_site: Path, tmp_path: Path, endpoint: Endpoint
) -> None:
    """Entry points are read one distribution at a time: off still wins."""
    bad = tmp_path / "bad-site"
    info = bad / "bad_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_bytes(broken)
    for sites in ([bad, noop_site], [noop_site, bad]):
        status = run_python(
            "from flwr_datasets_telemetry.cli import main; main(['status', '--json'])",
            {"PYTHONPATH": os.pathsep.join(map(str, [*sites, REPO]))},
        )
        state = json.loads(status.stdout)
        assert state["enabled"] is False, state
        assert state["reason"] == "by plugin 'noop' (flwr-datasets-telemetry-noop 1.0.0)"
    _, facts = run_with([bad, noop_site], endpoint)
    assert endpoint.connections == 0
    assert facts["threads"] == 1


@pytest.mark.parametrize(
    "env",
    [
        {"FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD": "1"},
        {"blocked": "noop,hardware"},
        {"FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD": "1", "blocked": "noop,hardware"},
    ],
    ids=["autoload-off", "blocked", "both"],
)
def test_the_no_op_plugin_wins_over_autoload_off_and_blocking(
    env: dict[str, str], noop_site: Path, accelerators_site: Path, endpoint: Endpoint
) -> None:
    sites = [noop_site, accelerators_site]
    _, facts = run_with(sites, endpoint, **env)
    assert endpoint.connections == 0
    assert "requests" not in facts["modules"]
    environment = {
        "PYTHONPATH": os.pathsep.join(map(str, [*sites, REPO])),
        "FLWR_TELEMETRY_DISABLE_COLLECTORS": env.get("blocked", ""),
        **{k: v for k, v in env.items() if k != "blocked"},
    }
    status = run_python(
        "from flwr_datasets_telemetry.cli import main; main(['status', '--json'])", environment
    )
    state = json.loads(status.stdout)
    assert state["enabled"] is False
    assert state["reason"] == "by plugin 'noop' (flwr-datasets-telemetry-noop 1.0.0)"


def test_autoload_off_loads_no_collector_plugin(
    accelerators_site: Path, endpoint: Endpoint
) -> None:
    run_with([accelerators_site], endpoint, FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD="1")
    (payload,) = endpoint.payloads()
    assert "accelerators" not in payload["context"]


def test_an_entry_point_with_a_built_in_name_replaces_it(site: Path, endpoint: Endpoint) -> None:
    write_distribution(
        site,
        "acme-hw",
        {"hardware": "acme_hw"},
        {
            "acme_hw": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            return {"cpu_count": 1, "note": "replaced"}
    """
        },
    )
    run_with([site], endpoint, blocked="")
    (payload,) = endpoint.payloads()
    assert payload["context"]["hw"] == {"cpu_count": 1, "note": "replaced"}


def test_an_entry_point_implementing_nothing_removes_a_built_in(
    site: Path, endpoint: Endpoint
) -> None:
    write_distribution(
        site,
        "acme-quiet",
        {"names": "acme_quiet", "platform": "acme_quiet"},
        {"acme_quiet": '"""Registers under two built-in names and answers nothing."""'},
    )
    run_with([site], endpoint)
    (payload,) = endpoint.payloads()
    assert payload["event_details"] == {}
    assert "platform" not in payload["context"]
    assert "package" in payload["context"]


def test_blocked_names_contribute_nothing(site: Path, endpoint: Endpoint, tmp_path: Path) -> None:
    """A blocked plugin is imported only to ask whether it turns telemetry off."""
    marker = tmp_path / "imported"
    write_distribution(
        site,
        "acme-spy",
        {"spy": "acme_spy"},
        {
            "acme_spy": f"""
        open({str(marker)!r}, "w").close()
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            return {{"seen": True}}
    """
        },
    )
    run_with([site], endpoint, blocked="spy,hardware,platform,environment")
    (payload,) = endpoint.payloads()
    assert marker.exists()  # asked `telemetry_enabled`, on a manager of its own
    assert set(payload["context"]) == {"source", "cluster", "date", "package"}


BROKEN = {
    "acme_broken_import": "raise RuntimeError('cannot import me')",
    "acme_raises": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            raise ValueError("collector bug")

        @hookimpl
        def telemetry_enabled():
            raise ValueError("enabled bug")
    """,
    "acme_junk": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            return ["not", "a", "mapping"]
    """,
    "acme_bad_signature": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect(no_such_argument):
            return {"x": 1}
    """,
    "acme_good": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect(call):
            return {"event": call.event_type}
    """,
}


def broken_site(site: Path) -> None:
    write_distribution(site, "acme-plugins", {name: name for name in BROKEN}, BROKEN)


def test_broken_plugins_leave_delivery_intact_and_silent(site: Path, endpoint: Endpoint) -> None:
    broken_site(site)
    run, facts = run_with([site], endpoint)
    assert facts["flushed"] is True
    (payload,) = endpoint.payloads()
    assert payload["context"]["acme_good"] == {"event": "load_partition"}
    assert not {"acme_raises", "acme_junk", "acme_broken_import"} & set(payload["context"])
    assert payload["event_details"]["dataset_name"] == "mnist"
    assert run.stderr == ""


def test_broken_plugins_are_reported_when_logging(site: Path, endpoint: Endpoint) -> None:
    broken_site(site)
    run, _ = run_with([site], endpoint, FLWR_TELEMETRY_LOGGING="1")
    assert (
        "plugin 'acme_broken_import' from acme-plugins 1.2.3 skipped: "
        "RuntimeError: cannot import me"
    ) in run.stderr
    assert "plugin 'acme_bad_signature' from acme-plugins 1.2.3 skipped" in run.stderr
    assert re.search(
        r"'acme_raises' \(acme-plugins 1.2.3\) raised in telemetry_collect: "
        r"ValueError: collector bug",
        run.stderr,
    )
    assert "raised in telemetry_enabled" in run.stderr
    assert len(endpoint.payloads()) == 1


HOSTILE = {
    "acme_exit_at_import": "import sys\nsys.exit(3)",
    "acme_system_exit": """
        import sys
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            sys.exit("collector exits")
    """,
    "acme_keyboard_interrupt": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            raise KeyboardInterrupt
    """,
    "acme_generator_exit": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            raise GeneratorExit
    """,
    "acme_bad_mapping": """
        from collections.abc import Mapping
        from flwr_datasets_telemetry import hookimpl

        class Treacherous(Mapping):
            def __getitem__(self, key): raise KeyError(key)
            def __len__(self): return 1
            def __iter__(self): raise SystemExit("iteration exits")

        @hookimpl
        def telemetry_collect():
            return Treacherous()
    """,
    "acme_good": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect(call):
            return {"event": call.event_type}
    """,
}


def test_plugins_raising_any_base_exception_cost_only_their_own_answer(
    site: Path, endpoint: Endpoint
) -> None:
    write_distribution(site, "acme-hostile", {name: name for name in HOSTILE}, HOSTILE)
    run, facts = run_with([site], endpoint, FLWR_TELEMETRY_LOGGING="1")
    assert facts["flushed"] is True
    (payload,) = endpoint.payloads()
    assert payload["context"]["acme_good"] == {"event": "load_partition"}
    assert payload["event_details"]["dataset_name"] == "mnist"
    assert not set(HOSTILE) - {"acme_good"} & set(payload["context"])
    assert "'acme_exit_at_import' from acme-hostile 1.2.3 skipped: SystemExit: 3" in run.stderr
    for name, error in [
        ("acme_system_exit", "SystemExit: collector exits"),
        ("acme_keyboard_interrupt", "KeyboardInterrupt"),
        ("acme_generator_exit", "GeneratorExit"),
    ]:
        assert f"{name!r} (acme-hostile 1.2.3) raised in telemetry_collect: {error}" in run.stderr
    assert "plugin 'acme_bad_mapping': answer lost: SystemExit" in run.stderr
    status = run_python(
        "from flwr_datasets_telemetry.cli import main; import sys; sys.exit(main(['status']))",
        {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])},
    )
    assert status.returncode == 0, status.stderr
    assert "acme_exit_at_import" in status.stdout


def test_plugin_authors_get_one_clear_line_per_mistake(site: Path, endpoint: Endpoint) -> None:
    write_distribution(
        site,
        "acme-mistakes",
        {"misspelt": "acme_misspelt", "source": "acme_reserved", "dropper": "acme_dropper"},
        {
            "acme_misspelt": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_colect():
            return {"x": 1}
    """,
            "acme_reserved": """
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            return {"spoofed": True}
    """,
            "acme_dropper": """
        import datetime
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_collect():
            return {"when": datetime.datetime(2026, 1, 1), "bad key!": 1, "kept": 2}
    """,
        },
    )
    run, _ = run_with([site], endpoint, FLWR_TELEMETRY_LOGGING="1", blocked="hardware,bogus")
    (payload,) = endpoint.payloads()
    assert payload["context"]["dropper"] == {"kept": 2}
    assert payload["context"]["source"] != {"spoofed": True}
    expected = [
        "implements 'telemetry_colect', which is not a hook of this package (misspelt?)",
        "plugin 'source' from acme-mistakes 1.2.3: its facts are never sent",
        "dropper.when: datetime value dropped",
        "dropper: key 'bad key!' dropped (not a valid key)",
        "FLWR_TELEMETRY_DISABLE_COLLECTORS names 'bogus', which matches no plugin",
    ]
    for line in expected:
        assert line in run.stderr
    status = run_python(
        "from flwr_datasets_telemetry.cli import main; main(['status', '--json'])",
        {
            "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
            "FLWR_TELEMETRY_DISABLE_COLLECTORS": "bogus",
        },
    )
    problems = " ".join(json.loads(status.stdout)["problems"])
    for line in (expected[0], expected[1], expected[4]):
        assert line in problems
    assert all(len(p) < 300 for p in json.loads(status.stdout)["problems"])


def test_a_transport_plugin_redirects_delivery(
    site: Path, endpoint: Endpoint, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    write_distribution(
        site,
        "acme-outbox",
        {"outbox": "acme_outbox"},
        {
            "acme_outbox": f"""
        from flwr_datasets_telemetry import hookimpl

        @hookimpl
        def telemetry_send(body):
            with open({str(outbox)!r}, "ab") as file:
                file.write(body + b"\\n")
            return True
    """
        },
    )
    run_with([site], endpoint, FLWR_TELEMETRY_LOGGING="1")
    assert endpoint.connections == 0
    (line,) = outbox.read_bytes().splitlines()
    assert validated(json.loads(line))["event_type"] == "load_partition"
    assert "delivered by 'outbox'" in recorded_outcomes()  # in the uploader


def test_the_readme_hook_reference_matches_the_hookspecs() -> None:
    readme = (REPO / "README.rst").read_text()
    for name in ("telemetry_collect", "telemetry_enabled", "telemetry_send"):
        doc = getattr(hookspecs, name).__doc__
        assert doc is not None
        paragraph = " ".join(doc.split())
        reference = " ".join(readme.split())
        assert paragraph in reference, f"README's reference of {name} is out of date"


def test_only_a_section_of_our_group_counts_as_declaring_a_plugin() -> None:
    """The cheap look before parsing: our own distribution names the package elsewhere,
    and no layout `importlib.metadata` reads as our section may be missed."""
    from flwr_datasets_telemetry._plugins import _may_declare_group

    ours = "[console_scripts]\nflwr-datasets-telemetry = flwr_datasets_telemetry.cli:main\n"
    assert not _may_declare_group(ours + "[pytest11]\nflwr_datasets_telemetry = x.y\n")
    for text in (
        "[flwr_datasets_telemetry]\nnoop = noop_plugin\n",
        "# comment\r\n[x]\r\na = b\r\n\r\n[flwr_datasets_telemetry]\r\nnoop = noop_plugin\r\n",
        "[x]\na = b\n   [flwr_datasets_telemetry]   \n  noop = noop_plugin\n",
    ):
        assert _may_declare_group(text), text


def _dist_info(site: Path, name: str, entry_points: str | None) -> Path:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)
    return info


def test_the_quick_look_skips_the_parse_only_where_no_plugin_can_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_surely_no_plugin` may only ever save work: every layout it does not read as
    `importlib.metadata` would, it leaves to the full parse."""
    from flwr_datasets_telemetry._plugins import _surely_no_plugin

    site = tmp_path / "site"
    _dist_info(site, "plain", None)
    _dist_info(site, "tool", "[console_scripts]\ntool = flwr_datasets_telemetry.cli:main\n")
    (site / "legacy.egg-info").write_text("Metadata-Version: 1.0\nName: legacy\n")  # a file
    monkeypatch.setattr("sys.path", [str(site), str(tmp_path / "missing")])
    assert _surely_no_plugin()

    _dist_info(site, "Plugin", "[flwr_datasets_telemetry]\nx = plugin\n")
    assert not _surely_no_plugin()


@pytest.mark.parametrize("layout", ["zip", "egg", "not-a-string", "fifo", "finder"])
def test_the_quick_look_leaves_every_layout_it_cannot_read_plainly_to_the_parse(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flwr_datasets_telemetry._plugins import _surely_no_plugin

    site = tmp_path / "site"
    site.mkdir()
    path: list[Any] = [str(site)]
    if layout == "zip":
        (tmp_path / "bundle.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
        path.append(str(tmp_path / "bundle.zip"))
    elif layout == "egg":
        (tmp_path / "old.egg" / "EGG-INFO").mkdir(parents=True)
        path.append(str(tmp_path / "old.egg"))
    elif layout == "not-a-string":
        path.append(site)
    elif layout == "fifo":  # must neither block nor be taken for "no entry points"
        os.mkfifo(_dist_info(site, "odd", None) / "entry_points.txt")
    else:

        class Finder:
            def find_distributions(self, _context: object = None) -> list[Any]:
                return []

        monkeypatch.setattr("sys.meta_path", [*__import__("sys").meta_path, Finder()])
    monkeypatch.setattr("sys.path", path)
    assert not _surely_no_plugin()


def test_the_quick_look_finds_the_installed_no_op_plugin(
    noop_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flwr_datasets_telemetry._plugins import _surely_no_plugin

    monkeypatch.setattr("sys.path", [str(noop_site)])
    assert not _surely_no_plugin()
