"""Child processes: isolated from the working folder, detached, idle, out of ``os.wait()``.

Each test runs real interpreters. The hostile working folder holds modules named after
what a child imports first; each one, if ever imported, leaves a marker file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import _spawn

from .helpers import REPO, run_command

FAKE = str(REPO / "tests" / "fake_modules")
HOSTILE_NAMES = (
    "json",
    "typing",
    "subprocess",
    "platform",
    "cpuinfo",
    "runpy",
    "site",
    "sitecustomize",
    "usercustomize",
    "flwr_datasets_telemetry",
)

#: A module the children run: it reports where and how it runs.
REPORTER = """
import json, os, sys
facts = {
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "sid": os.getsid(0) if hasattr(os, "getsid") else None,
    "cwd": os.getcwd(),
    "path": sys.path,
    "isolated": sys.flags.isolated,
    "policy": os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None,
    "nice": os.nice(0),
    "json": json.__file__,
    "argv": sys.argv[1:],
}
if os.path.isdir("/proc/self/fd"):
    facts["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    for number, stream in enumerate(("stdin", "stdout", "stderr")):
        facts[stream] = os.readlink(f"/proc/self/fd/{number}")
if len(sys.argv) > 1 and sys.argv[1] == "--to":
    with open(sys.argv[2] + ".tmp", "w") as out:
        json.dump(facts, out)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
else:
    print(json.dumps(facts))
"""


def hostile_folder(root: Path) -> tuple[Path, Path]:
    """A working folder full of modules that must never run; and their marker folder."""
    folder, markers = root / "hostile", root / "markers"
    folder.mkdir()
    markers.mkdir()
    for name in HOSTILE_NAMES:
        code = f"open({str(markers / name)!r} + '-' + str(__import__('os').getpid()), 'w')\n"
        if name == "flwr_datasets_telemetry":
            (folder / name).mkdir()
            (folder / name / "__init__.py").write_text(code)
        else:
            (folder / f"{name}.py").write_text(code)
    return folder, markers


def reporter_on_path(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``reporter_module`` in a folder on this process's path (as PYTHONPATH would put it)."""
    folder = root / "on-path"
    folder.mkdir()
    (folder / "reporter_module.py").write_text(REPORTER)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def wait_for(path: Path, timeout: float = 20.0) -> bool:
    """A detached worker's only signal is the file it writes."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return path.exists()


def test_an_isolated_child_finds_host_packages_but_nothing_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, markers = hostile_folder(tmp_path)
    on_path = reporter_on_path(tmp_path, monkeypatch)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend("")  # as `python -c` and the REPL have it
    monkeypatch.syspath_prepend(str(folder))  # and `python -m` has the folder itself
    output = _spawn.run_isolated("reporter_module", ["a", "b"], timeout=30)
    assert output is not None
    facts = json.loads(output)
    assert list(markers.iterdir()) == []
    assert facts["argv"] == ["a", "b"]
    assert facts["cwd"] == os.path.abspath(os.sep)
    assert facts["isolated"] == 1
    assert str(on_path) in facts["path"]
    assert "" not in facts["path"]
    assert str(folder) not in facts["path"]
    assert facts["json"].startswith(os.path.dirname(os.__file__))  # the standard library's


def test_a_path_entry_cannot_shadow_the_standard_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = reporter_on_path(tmp_path, monkeypatch)
    markers = tmp_path / "markers"
    markers.mkdir()
    for name in ("json", "runpy", "site", "os"):
        (on_path / f"{name}.py").write_text(f"open({str(markers / name)!r}, 'w')\n")
    output = _spawn.run_isolated("reporter_module", [], timeout=30)
    assert output is not None
    assert list(markers.iterdir()) == []
    path = json.loads(output)["path"]
    assert path.index(str(on_path)) > path.index(os.path.dirname(os.__file__))


def test_a_detached_worker_is_not_our_child_and_runs_at_idle_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reporter_on_path(tmp_path, monkeypatch)
    report = tmp_path / "report.json"
    assert _spawn.start_detached("reporter_module", ["--to", str(report)])
    assert wait_for(report)
    facts = json.loads(report.read_text())
    assert facts["ppid"] != os.getpid()  # re-parented: os.wait() here cannot return it
    assert facts["sid"] == facts["pid"] or facts["sid"] != os.getsid(0)  # no terminal
    assert facts["stdin"] == os.devnull
    if hasattr(os, "SCHED_IDLE"):
        assert facts["policy"] == os.SCHED_IDLE
    else:
        assert facts["nice"] == 19
    assert _spawn._direct == []  # nothing left for this process to reap


def high_descriptor(*, inheritable: bool) -> int:
    """An open descriptor numbered above any a fresh interpreter opens by itself."""
    import fcntl

    low = os.open(os.devnull, os.O_RDONLY)
    try:
        fd = fcntl.fcntl(low, fcntl.F_DUPFD, 100)
    finally:
        os.close(low)
    os.set_inheritable(fd, inheritable)
    return fd


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux /proc")
def test_both_kinds_of_child_start_alike_but_for_their_output_and_passed_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reporter_on_path(tmp_path, monkeypatch)
    stray, kept = high_descriptor(inheritable=True), high_descriptor(inheritable=False)
    report = tmp_path / "report.json"
    try:
        output = _spawn.run_isolated("reporter_module", [], timeout=30)
        assert _spawn.start_detached("reporter_module", ["--to", str(report)], pass_fds=[kept])
        assert wait_for(report)
    finally:
        os.close(stray)
        os.close(kept)
    assert output is not None
    isolated, detached = json.loads(output), json.loads(report.read_text())
    for facts in (isolated, detached):
        assert facts["stdin"] == facts["stderr"] == os.devnull
        assert facts["cwd"] == os.path.abspath(os.sep)
        assert facts["isolated"] == 1
        assert facts["sid"] != os.getsid(0)  # a session of its own: no terminal signals
        assert stray not in facts["fds"]  # close_fds: nothing inherited unasked
    assert isolated["sid"] == isolated["pid"]
    assert isolated["stdout"].startswith("pipe:")  # its output is what run_isolated returns
    assert detached["stdout"] == os.devnull
    assert kept in detached["fds"]  # pass_fds: the uploader's lock
    assert kept not in isolated["fds"]


def test_a_host_that_is_pid_1_reaps_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a container without an init, orphans come back to PID 1: no double fork then.
    reporter_on_path(tmp_path, monkeypatch)
    monkeypatch.setattr(_spawn, "_host_is_init", lambda: True)
    report = tmp_path / "report.json"
    assert _spawn.start_detached("reporter_module", ["--to", str(report)])
    assert wait_for(report)
    assert json.loads(report.read_text())["ppid"] == os.getpid()
    (child,) = _spawn._direct
    child.wait(timeout=20)
    _spawn.reap()
    assert _spawn._direct == []
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(child.pid, os.WNOHANG)


PID_1_HOST_EXITS_FIRST = """
import sys
from flwr_datasets_telemetry import _spawn
_spawn._host_is_init = lambda: True
sys.path.insert(0, sys.argv[1])
assert _spawn.start_detached("sleeper", [])
"""


def test_a_pid_1_host_may_exit_before_its_worker_without_a_word(tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(5)\n")
    done = run_command(
        [sys.executable, "-W", "error", "-c", PID_1_HOST_EXITS_FIRST, str(tmp_path)],
        {**os.environ, "PYTHONPATH": str(REPO)},
        30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "ResourceWarning: subprocess ... is still running"


@pytest.mark.parametrize("executable", ["", "/usr/bin/uwsgi", "/nonexistent/python3"])
def test_no_child_where_there_is_no_python_to_run(
    monkeypatch: pytest.MonkeyPatch, executable: str
) -> None:
    monkeypatch.setattr(sys, "executable", executable)
    assert _spawn.start_detached("reporter_module", []) is False
    assert _spawn.run_isolated("reporter_module", [], timeout=5) is None


def test_a_platform_that_refuses_to_start_processes_costs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("no processes here")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(_spawn, "_Child", refuse)
    assert _spawn.start_detached("reporter_module", []) is False
    assert _spawn.run_isolated("reporter_module", [], timeout=5) is None


def test_run_isolated_kills_a_child_that_outlives_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "on-path"
    folder.mkdir()
    (folder / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.syspath_prepend(str(folder))
    start = time.monotonic()
    assert _spawn.run_isolated("sleeper", [], timeout=1) is None
    assert time.monotonic() - start < 10


# -- end to end: a user's program makes a tracked call with a fresh FLWR_HOME -----------


def run_program(code: str, cwd: Path, env: dict[str, str], timeout: float = 60) -> str:
    """Run ``code`` as a script kept outside ``cwd``, the way ``python /x/job.py`` runs."""
    script = cwd.parent / "program.py"
    script.write_text(textwrap.dedent(code))
    child_env = {**os.environ, **env}
    child_env["PYTHONPATH"] = os.pathsep.join((FAKE, str(REPO)))
    done = run_command([sys.executable, str(script)], child_env, timeout, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


TRACKED_CALL = """
import os, time
from flwr_datasets_telemetry import track
track("hostile")(lambda: None)()
cache = os.path.join(os.environ["FLWR_HOME"], "telemetry", "hardware.json")
deadline = time.monotonic() + 30
while not os.path.exists(cache) and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def test_a_tracked_call_runs_nothing_from_the_working_folder(home: Path, tmp_path: Path) -> None:
    folder, markers = hostile_folder(tmp_path)
    output = run_program(TRACKED_CALL, folder, {"FLWR_TELEMETRY_LOGGING": "1"})
    assert list(markers.iterdir()) == []
    # ...and the CPU facts still arrive, from the fake py-cpuinfo found on PYTHONPATH.
    assert re.search(r'"cpu_brand":\s*"Fake CPU"', output), output


WAITING_HOST = """
import json, os, subprocess, sys, time
from flwr_datasets_telemetry import track
gate = sys.argv[1]
track("waiting_host")(lambda: None)()
deadline = time.monotonic() + 30
while not os.path.exists(os.path.join(gate, "started")) and time.monotonic() < deadline:
    time.sleep(0.01)
# The host's own child lets the probe answer, then lives on for a second.
code = "import sys; open(sys.argv[1], 'w').close(); import time; time.sleep(1)"
own = subprocess.Popen([sys.executable, "-c", code, os.path.join(gate, "go")])
waited = [os.wait()[0]]
while waited[-1] != own.pid:
    waited.append(os.wait()[0])
print(json.dumps({"own": own.pid, "waited": waited}))
"""


def gated_program(home: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "host.py"
    script.write_text(WAITING_HOST)
    # Offline: the event waits in the outbox, so no uploader starts while the host
    # waits (an uploader's start is a spawn of its own; see `_spawn` on that moment).
    env = {**os.environ, "FAKE_CPUINFO": f"gate:{gate}", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join((FAKE, str(REPO)))
    done = subprocess.run(
        [sys.executable, str(script), str(gate)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), json.loads((gate / "started").read_text())


def test_the_host_os_wait_returns_its_own_child_never_the_probe(home: Path, tmp_path: Path) -> None:
    waited, probe = gated_program(home, tmp_path)
    assert probe["ppid"] not in waited["waited"]  # the probe (py-cpuinfo's parent)
    assert waited["waited"] == [waited["own"]]


def test_the_probe_yields_the_cpu_to_the_host(home: Path, tmp_path: Path) -> None:
    _, probe = gated_program(home, tmp_path)
    if hasattr(os, "SCHED_IDLE"):
        assert probe["policy"] == os.SCHED_IDLE
    else:
        assert probe["nice"] == 19
    assert probe["isolated"] == 1
    assert probe["cwd"] == os.path.abspath(os.sep)


@pytest.mark.parametrize("dont_write", [True, False])
def test_children_write_bytecode_only_where_the_host_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dont_write: bool
) -> None:
    # -I ignores PYTHONDONTWRITEBYTECODE: the host's choice is passed on explicitly.
    on_path = reporter_on_path(tmp_path, monkeypatch)
    monkeypatch.setattr(sys, "dont_write_bytecode", dont_write)
    (on_path / "imported_module.py").write_text("")
    (on_path / "importer.py").write_text("import imported_module\n")
    assert _spawn.run_isolated("importer", [], timeout=30) is not None
    assert (on_path / "__pycache__").exists() is not dont_write


WAITS_AT_ONCE = """
import os, subprocess
from flwr_datasets_telemetry import track
track("waits_at_once")(lambda: None)()
own = subprocess.Popen(["sleep", "0.5"])
print(os.wait()[0] == own.pid)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux /proc")
def test_a_host_blocked_in_os_wait_right_after_a_tracked_call_gets_its_own_child(
    tmp_path: Path,
) -> None:
    # The reproduction. Starting a child while the host is blocked in
    # os.wait() would hand it our intermediate about half the time: repeat it.
    for run in range(4):
        env = {**os.environ, "FLWR_HOME": str(tmp_path / f"home-{run}")}
        env["PYTHONPATH"] = os.pathsep.join((FAKE, str(REPO)))
        done = run_command([sys.executable, "-c", WAITS_AT_ONCE], env, 60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "True", f"run {run}: os.wait() returned one of ours"


def _blocked_in(target: Any) -> tuple[threading.Thread, subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "30"])
    thread = threading.Thread(target=target, args=(child,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the thread sleeps in the kernel
        with open(f"/proc/self/task/{thread.native_id}/wchan") as file:
            if file.read().strip() == "do_wait":
                break
        time.sleep(0.005)
    return thread, child


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux /proc")
def test_host_is_waiting_sees_a_wait_for_any_child_only() -> None:
    assert not _spawn.host_is_waiting()
    thread, child = _blocked_in(lambda c: c.wait())  # waitpid(its own pid): not ours
    assert not _spawn.host_is_waiting()
    child.kill()
    thread.join()
    thread, child = _blocked_in(lambda _: os.waitpid(-1, 0))  # any child: ours too
    assert _spawn.host_is_waiting()
    child.kill()
    thread.join()
    child.wait()  # already reaped by the thread: returns at once
    assert not _spawn.host_is_waiting()


def test_the_folder_a_module_host_started_in_stays_out_after_a_chdir(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    marker = tmp_path / "pwned"
    (project / "cpuinfo.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (project / "hostmod.py").write_text(
        textwrap.dedent(
            f"""
            import os, sys
            from flwr_datasets_telemetry import _spawn
            os.chdir({str(tmp_path)!r})          # the start folder is sys.path[0] still
            assert {str(project)!r} not in _spawn.search_path()
            print(_spawn.run_isolated("cpuinfo", ["--json"], 30) is not None)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = run_command([sys.executable, "-m", "hostmod"], env, 60, cwd=project)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_a_host_run_from_a_source_checkout_starts_children_that_import_that_copy(
    tmp_path: Path,
) -> None:
    """``python -c`` in a checkout imports the package through ''; its children, kept
    out of the working folder, must still import that very copy (not another installed
    one, nor none at all)."""
    import shutil

    checkout = tmp_path / "checkout"
    package = checkout / "flwr_datasets_telemetry"
    shutil.copytree(REPO / "flwr_datasets_telemetry", package)
    (package / "_version.py").write_text('__version__ = "9.9.9+checkout"\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = textwrap.dedent(
        """
        import os, sys
        from flwr_datasets_telemetry import _spawn
        print(_spawn.__file__.startswith(os.getcwd()))
        output = _spawn.run_isolated("flwr_datasets_telemetry", ["--version"], 60)
        print(output.decode().split()[-1] if output else None)
        """
    )
    run = run_command([sys.executable, "-c", code], env, 90, cwd=checkout)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "9.9.9+checkout"]


def test_a_child_reads_the_machine_settings_file_the_host_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relative ``FLWR_TELEMETRY_MACHINE_CONFIG`` names a file from where the host
    started; the uploader, run in ``/``, must read that same file (it checks it before
    each delivery), not ``/machine.conf``."""
    from flwr_datasets_telemetry._config import STARTED_IN

    monkeypatch.setenv("FLWR_TELEMETRY_MACHINE_CONFIG", "machine.conf")
    output = _spawn.run_isolated("flwr_datasets_telemetry", ["status", "--json"], timeout=60)
    assert output is not None
    sources = dict(json.loads(output)["sources"])
    expected = os.path.join(STARTED_IN, "machine.conf")
    assert [s for s in sources if s.startswith("machine setting")] == [
        f"machine setting {expected}"
    ]


def test_a_child_uses_the_home_the_host_uses_when_it_is_relative(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A relative ``FLWR_HOME`` names a folder from where the host started, after a
    chdir too; the uploader, run in ``/``, must read the settings of that same home
    before each delivery (a hand-written ``telemetry = disabled`` there), not
    ``/<relative>``."""
    from flwr_datasets_telemetry._config import STARTED_IN, read_config

    home = tmp_path / "home"
    monkeypatch.setenv("FLWR_HOME", os.path.relpath(home, STARTED_IN))
    monkeypatch.chdir(tmp_path)  # the host moves: the same home
    assert read_config().home == str(home)
    output = _spawn.run_isolated("flwr_datasets_telemetry", ["status", "--json"], timeout=60)
    assert output is not None
    assert json.loads(output)["source_file"] == str(home / "source")
