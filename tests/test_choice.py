"""The person's choice wins: late opt-outs, `disable()`, persistent settings, off first."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import _choice, _runtime, disable, event, flush
from flwr_datasets_telemetry._config import read_config

from .helpers import REPO, run_python
from .servers import Endpoint
from .test_cli import cli
from .test_runtime import GatedTransport

TRACKED_CALL = """
from tests.fake_flwr_datasets import FederatedDataset
FederatedDataset(dataset="mnist", partitioners={"train": 3}).load_partition(0, "train")
"""


def tasks() -> int:
    """Threads of this process as the OS sees them (bare `_thread` ones included)."""
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize(
    "opt_out",
    [
        'os.environ["FLWR_TELEMETRY_ENABLED"] = "0"',
        'os.environ["FLWR_TELEMETRY_ENABLED"] = "Off"',
        'os.environ["DO_NOT_TRACK"] = "1"',
        (
            "open(os.path.join(os.environ['FLWR_HOME'], 'telemetry.conf'), 'w')"
            ".write('telemetry = disabled')"
        ),
    ],
    ids=["enabled-0", "enabled-off", "do-not-track", "user-setting"],
)
def test_an_opt_out_after_import_stops_every_event(
    opt_out: str, endpoint: Endpoint, home: Path
) -> None:
    home.mkdir()
    code = f"""
import os
import flwr_datasets_telemetry as t
{opt_out}
{TRACKED_CALL}
print(t.flush(5))
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert run.returncode == 0, run.stderr
    assert endpoint.connections == 0
    assert run.stderr == ""


def test_an_opt_out_between_calls_in_a_notebook_like_session(endpoint: Endpoint) -> None:
    code = """
import os
import flwr_datasets_telemetry as t
from tests.fake_flwr_datasets import FederatedDataset
fds = FederatedDataset(dataset="mnist", partitioners={"train": 3})
fds.load_partition(0, "train")           # cell 1
assert t.flush(10)
os.environ["FLWR_TELEMETRY_ENABLED"] = "0"   # cell 2
fds.load_split("train")                  # cell 3
t.flush(10)
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert run.returncode == 0, run.stderr
    assert [p["event_type"] for p in endpoint.payloads()] == ["load_partition"]


def test_an_opt_out_in_conftest_is_honoured_under_pytest(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        'import os\nos.environ["FLWR_TELEMETRY_ENABLED"] = "0"\n', encoding="utf-8"
    )
    (project / "test_uses_a_tracked_library.py").write_text(
        textwrap.dedent(
            """
            import flwr_datasets_telemetry as t
            from tests.fake_flwr_datasets import FederatedDataset

            def test_it():
                FederatedDataset(dataset="mnist", partitioners={"train": 3}).load_split("train")
                t.flush(5)
            """
        ),
        encoding="utf-8",
    )
    code = f"""
import sys, pytest
assert "flwr_datasets_telemetry.pytest_plugin" in {{
    ep.value for ep in __import__("importlib.metadata").metadata.entry_points(group="pytest11")
}}
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", {str(project)!r}]))
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    assert endpoint.connections == 0


def test_disable_in_code_leaves_the_process_inert(endpoint: Endpoint, home: Path) -> None:
    code = f"""
import os, threading
import flwr_datasets_telemetry as t
t.disable()
t.disable()  # idempotent
{TRACKED_CALL}
t.event("by_hand")
print(t.flush(5), len(os.listdir("/proc/self/task")))
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "1"]
    assert endpoint.connections == 0
    assert not home.exists()


@pytest.mark.parametrize("where", ["inside", "before"])
def test_disable_sticks_after_a_capture_block(endpoint: Endpoint, home: Path, where: str) -> None:
    """The block ends by putting back the runtime it replaced, unless the person turned
    telemetry off: nothing may turn that back on — not the capture's own runtime left
    in place (a details factory then ran at every tracked call)."""
    inside = "t.disable()" if where == "inside" else "pass"
    before = "t.disable()" if where == "before" else ""
    code = f"""
import os
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _runtime
from flwr_datasets_telemetry.testing import capture_events
t.event("waiting")  # offline: it waits in the outbox until the opt-out
t.flush(5)
{before}
with capture_events():
    {inside}
print(_runtime.STATE.current is None)
{TRACKED_CALL}
t.event("by_hand")
print(t.flush(5))
print(os.listdir(os.path.join(os.environ["FLWR_HOME"], "telemetry", "outbox")))
"""
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_HUB_OFFLINE": "1"}
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True", "[]"]  # the one waiting, taken back
    assert endpoint.connections == 0


def test_disable_drops_queued_events_and_forked_children_stay_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flwr_datasets_telemetry._config import Config

    transport = GatedTransport()
    config = Config(home=None, blocked=frozenset({"hardware", "http"}), autoload=False)
    runtime = _runtime.Runtime(config, _runtime.random_uuid(), {"gated": transport})
    monkeypatch.setattr(_runtime.STATE, "current", runtime)
    monkeypatch.setattr(_runtime.STATE, "disabled_by", None)
    event("first")
    assert transport.waiting.wait(10)  # the sender holds "first" at the gate
    for n in range(5):
        event(f"queued{n}")
    disable()
    transport.gate.set()
    flush(10)
    assert runtime.flush(10) is False  # five were dropped, and said so
    assert transport.delivered == ["first"]
    assert _runtime.STATE.current is None
    event("after")
    assert transport.delivered == ["first"]
    assert runtime.senders == 0


def test_the_users_persistent_choice_applies_to_every_new_process(
    endpoint: Endpoint, home: Path
) -> None:
    home.mkdir()
    _choice.write_setting(str(home), _choice.DISABLED)
    text = (home / "telemetry.conf").read_text(encoding="utf-8")
    assert "telemetry = disabled" in text
    assert oct((home / "telemetry.conf").stat().st_mode & 0o777) == "0o600"
    run = run_python(
        f"import flwr_datasets_telemetry as t\n{TRACKED_CALL}\nprint(t.flush(5))",
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_ENABLED": "1"},
    )
    assert run.returncode == 0, run.stderr
    assert endpoint.connections == 0
    state = read_config()
    assert not state.enabled
    assert state.disabled_by == f"the user setting ({home / 'telemetry.conf'})"


def test_the_machine_setting_switches_a_machine_off(endpoint: Endpoint, tmp_path: Path) -> None:
    machine = tmp_path / "etc-flwr.conf"
    machine.write_text("# the administrator's choice\ntelemetry = disabled\n", encoding="utf-8")
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_MACHINE_CONFIG": str(machine)}
    run = run_python(f"import flwr_datasets_telemetry as t\n{TRACKED_CALL}\nt.flush(5)", env)
    assert run.returncode == 0, run.stderr
    assert endpoint.connections == 0
    status = run_python(
        "from flwr_datasets_telemetry.cli import main; main(['status', '--json'])", env
    )
    state = json.loads(status.stdout)
    assert state["enabled"] is False
    assert "machine setting" in state["reason"]


def test_enabled_in_a_setting_never_overrides_an_off_variable(home: Path) -> None:
    home.mkdir()
    _choice.write_setting(str(home), _choice.ENABLED)
    config = read_config({**os.environ, "DO_NOT_TRACK": "1"})
    assert not config.enabled
    assert config.disabled_by == "DO_NOT_TRACK=1"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _loop(path: Path) -> None:
    path.symlink_to(path)


def _junk(path: Path) -> None:
    path.write_bytes(b"\xff\xfe telemetry = ???")


def _huge(path: Path) -> None:
    path.write_text("# " + "x" * 10_000 + "\ntelemetry = enabled\n", encoding="utf-8")


def _unknown(path: Path) -> None:
    path.write_text("telemetry = perhaps\n", encoding="utf-8")


def _symlink(path: Path) -> None:
    target = path.parent / "elsewhere.conf"
    target.write_text("telemetry = enabled\n", encoding="utf-8")
    path.symlink_to(target)


@pytest.mark.parametrize(
    "make", [_fifo, _directory, _loop, _junk, _huge, _unknown, _symlink], ids=lambda f: f.__name__
)
def test_an_unusable_user_setting_reads_as_off_and_says_why(make: Any, home: Path) -> None:
    home.mkdir()
    make(home / "telemetry.conf")
    config = read_config()  # must not block on the FIFO, nor raise
    assert not config.enabled
    assert "user setting" in (config.disabled_by or "")
    assert any("read as 'disabled' to be safe" in problem for problem in config.problems)


def test_settings_are_parsed_strictly() -> None:
    assert _choice.parse(b"# comment\n\n  Telemetry = LOCAL  # inline\n") == _choice.LOCAL
    assert _choice.parse(b"telemetry=off") == _choice.DISABLED
    for bad in (b"", b"# only a comment", b"enabled", b"colour = blue"):
        with pytest.raises(ValueError, match=r"."):
            _choice.parse(bad)


def test_write_setting_never_creates_folders_above_the_home(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="does not exist"):
        _choice.write_setting(str(tmp_path / "missing" / ".flwr"), _choice.DISABLED)
    assert not (tmp_path / "missing").exists()


def test_status_lists_every_source_and_which_decided(home: Path) -> None:
    home.mkdir()
    _choice.write_setting(str(home), _choice.DISABLED)
    run = run_python(
        "from flwr_datasets_telemetry.cli import main; main(['status', '--json'])",
        {"PYTHONPATH": str(REPO)},
    )
    state = json.loads(run.stdout)
    sources = dict(state["sources"]) if isinstance(state["sources"], list) else state["sources"]
    names = " ".join(sources)
    for expected in ("FLWR_TELEMETRY_ENABLED", "DO_NOT_TRACK", "user setting", "machine setting"):
        assert expected in names
    assert state["reason"].startswith("by the user setting")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_the_late_choice_costs_nothing_when_nothing_is_set(home: Path) -> None:
    assert _choice.late_choice(str(home)) == (None, None)
    assert not home.exists()


def test_disable_by_command_then_a_new_process_sends_nothing(
    endpoint: Endpoint, home: Path
) -> None:
    done = cli("disable")
    assert done.returncode == 0, done.stderr
    assert str(home / "telemetry.conf") in done.stdout
    run = run_python(
        f"import flwr_datasets_telemetry as t\n{TRACKED_CALL}\nt.flush(5)",
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url},
    )
    assert run.returncode == 0, run.stderr
    assert endpoint.connections == 0
    state = json.loads(cli("status", "--json").stdout)
    assert state["enabled"] is False
    assert state["reason"] == f"by the user setting ({home / 'telemetry.conf'})"
    text = cli("status").stdout
    assert f"user setting {home / 'telemetry.conf'}: disabled" in text
    enabled = cli("enable", "--json")
    assert json.loads(enabled.stdout)["enabled"] is True
    assert "telemetry = enabled" in (home / "telemetry.conf").read_text(encoding="utf-8")


def test_enable_says_when_something_else_still_says_off(home: Path) -> None:
    done = cli("enable", env={"DO_NOT_TRACK": "1"})
    assert done.returncode == 0
    assert "telemetry stays off here by DO_NOT_TRACK=1: off always wins" in done.stdout


@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_disable_on_an_unwritable_home_fails_in_one_line_and_changes_nothing(
    flag: list[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    done = cli("disable", *flag, env={"FLWR_HOME": str(blocker / "flwr")})
    assert done.returncode == 1
    if flag:
        assert "cannot store the choice" in json.loads(done.stdout)["error"]
    else:
        assert done.stderr.count("\n") == 1
        assert "cannot store the choice" in done.stderr
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_a_late_opt_out_with_logging_on_creates_nothing(endpoint: Endpoint, home: Path) -> None:
    code = f"""
import os
import flwr_datasets_telemetry as t
os.environ["DO_NOT_TRACK"] = "1"
{TRACKED_CALL}
t.flush(5)
"""
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_LOGGING": "1"}
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert "telemetry turned off by DO_NOT_TRACK=1" in run.stderr
    assert "event load_partition: {" in run.stderr  # still shown, as logging promises
    assert not home.exists()  # no id, no cache, no probe, no outbox
    assert endpoint.connections == 0


_VALUES = ("", "0", " OFF ", "no", "1", "true", "Yes", "enabled", "disabled", "local", "2", "nah")


@pytest.mark.parametrize("variable", ["FLWR_TELEMETRY_ENABLED", "DO_NOT_TRACK"])
@pytest.mark.parametrize("value", _VALUES)
def test_a_variable_set_late_means_what_it_means_at_start(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A value that turns telemetry off at start turns it off when set later, and one
    that leaves it on at start (``DO_NOT_TRACK=0``, ``local``) stops nothing later.
    ``DO_NOT_TRACK=disabled`` and ``FLWR_TELEMETRY_ENABLED=enabled`` once differed."""
    env = {variable: value, _choice.MACHINE_FILE_VARIABLE: str(tmp_path / "absent.conf")}
    at_start = read_config(env).disabled_by
    later = _choice.late_choice(None, env)[0]
    assert at_start == later
    expected_off = {
        "FLWR_TELEMETRY_ENABLED": {" OFF ", "0", "no", "enabled", "disabled", "2", "nah"},
        "DO_NOT_TRACK": {"1", "true", "Yes", "enabled", "disabled", "local", "2", "nah"},
    }[variable]
    assert (later is not None) == (value in expected_off), later


def test_a_relative_machine_file_is_the_same_file_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read at start and before each event: a ``chdir`` in between must not make it
    another file (one in whatever folder the host works in now)."""
    from flwr_datasets_telemetry._config import STARTED_IN

    env = {_choice.MACHINE_FILE_VARIABLE: "machine.conf"}
    before = _choice.machine_file(env)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "machine.conf").write_text("telemetry = disabled\n", encoding="utf-8")
    assert _choice.machine_file(env) == before == os.path.join(STARTED_IN, "machine.conf")
    assert _choice.late_choice(None, env) == (None, None)
