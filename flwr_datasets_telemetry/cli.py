"""``flwr-datasets-telemetry``: is it on and why, what exactly is sent, forget my id.

Conventions of ``pip`` and ``git``:

- Exit codes: 0 success; 1 the command could not do its job (``forget`` could not
  delete the file); 2 wrong usage; 130 interrupted (Ctrl-C); 141 (128 + SIGPIPE) the
  reader closed the pipe (``status | head -1``), which is what a shell reports for a
  Unix tool ended by that signal. None of them prints a traceback; a closed pipe
  prints nothing at all.
- Errors are one line on stderr; with ``--json`` they are a JSON object with an
  ``"error"`` field on stdout instead, so scripts always get JSON.

A command is one `Commands.add` call in `build_parser` plus its ``cmd_*`` function.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from . import _choice, _outbox, _runtime
from ._call import SUCCESS, TrackedCall
from ._identity import read_source
from ._pipeline import Pipeline
from ._status import Status, status
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PROG: Final = "flwr-datasets-telemetry"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
#: 128 + SIGPIPE (13), spelled out: Windows has no SIGPIPE to take it from.
EXIT_BROKEN_PIPE: Final = 141

#: What `preview` pretends to track by default: Flower Datasets' most common event.
PREVIEW_EVENT: Final = "LOAD_PARTITION_CALLED"
PREVIEW_MODULE: Final = "flwr_datasets.federated_dataset"

#: One line each in ``--help``; the README's *Configuration* section says more.
ENVIRONMENT: Final = (
    ("FLWR_TELEMETRY_ENABLED", "0, false, no or off: telemetry off"),
    ("DO_NOT_TRACK", "1 or true: telemetry off"),
    ("FLWR_TELEMETRY_LOGGING", "1: print every payload and delivery outcome"),
    ("FLWR_HOME", "folder of the anonymous id (default ~/.flwr)"),
    ("FLWR_TELEMETRY_ENDPOINT", "where events go (self-hosting, tests)"),
    ("FLWR_TELEMETRY_DISABLE_COLLECTORS", "plugins to block, e.g. hardware,names"),
    ("FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD", "1: load only the built-in plugins"),
    ("FLWR_TELEMETRY_EXIT_TIMEOUT", "seconds events may delay exit (default 0.8)"),
    ("FLWR_TELEMETRY_RETRY_WAIT", "seconds the uploader waits out an outage (default 3600)"),
    ("HF_HUB_OFFLINE, HF_DATASETS_OFFLINE", "1: no network attempt"),
)
EPILOG: Final = "\n".join(
    [
        "environment variables:",
        *(f"  {name:<39} {meaning}" for name, meaning in ENVIRONMENT),
        "",
        "exit status: 0 done, 1 failed, 2 wrong usage, 141 output pipe closed by its reader",
    ]
)


class CommandError(Exception):
    """A command could not do its job: one line for people, ``data`` for ``--json``."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


def _print(data: dict[str, Any], lines: list[str], *, as_json: bool) -> None:
    print(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def _jsonable(value: Any) -> Any:
    """``value`` with paths as strings and tuples as lists; whatever `Status` holds."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return str(value)


def _status_data(state: Status) -> dict[str, Any]:
    return {
        field.name: _jsonable(getattr(state, field.name)) for field in dataclasses.fields(state)
    }


#: `Status` fields with a line of their own in `cmd_status`; the rest are shown generically.
_STATUS_SHOWN: Final = frozenset(
    {"enabled", "reason", "logging", "endpoint", "source", "source_file", "plugins"}
    | {"blocked", "problems", "sources"}
)


def _source_line(state: Status) -> str:
    if state.source:
        return state.source
    if state.source_file is None:
        return "none (no usable home folder: set FLWR_HOME)"
    if not state.enabled:
        return "none (none is created while telemetry is off)"
    return "none yet (created with the first event sent)"


def _generic_lines(name: str, value: Any) -> list[str]:
    label = f"{name.replace('_', ' ')}:"
    if isinstance(value, list):
        return [f"{label:<10} {item}" for item in value]
    if isinstance(value, dict):
        return [label, *(f"  {key:<10} {item}" for key, item in value.items())]
    return [f"{label:<10} {value}"]


def cmd_status(args: argparse.Namespace) -> int:
    state = status()
    data = _status_data(state)
    lines = [
        f"telemetry: {'enabled' if state.enabled else 'disabled'} {state.reason}",
        "asked, in order (off always wins):",
        *(f"  {source}: {says}" for source, says in state.sources),
        f"logging:   {'on' if state.logging else 'off'} (FLWR_TELEMETRY_LOGGING)",
        f"endpoint:  {state.endpoint}",
        f"source id: {_source_line(state)}",
        f"id file:   {state.source_file or 'none (no usable home folder)'}",
        "plugins:",
        *(f"  {name:<10} from {origin}" for name, origin in sorted(state.plugins.items())),
    ]
    if state.blocked:
        lines.append(f"blocked:   {', '.join(state.blocked)} (FLWR_TELEMETRY_DISABLE_COLLECTORS)")
    lines += [f"problem:   {problem}" for problem in state.problems]
    for name, value in data.items():
        if name not in _STATUS_SHOWN and value not in (None, [], {}):
            lines += _generic_lines(name, value)
    _print(data, lines, as_json=args.json)
    return EXIT_OK


class _FederatedDataset:
    """Stands in for ``flwr_datasets.FederatedDataset``: the attributes `names` reads."""

    def __init__(
        self, dataset: str | None, subset: str | None, partitioners: dict[str, object]
    ) -> None:
        self._dataset_name = dataset
        self._subset = subset
        self._partitioners = partitioners


def _partitioner(name: str, count: int | None) -> object:
    """An object whose class is called ``name``: the `names` collector reports that."""
    partitioner: object = type(name, (), {})()
    if count is not None:
        partitioner.__dict__["_num_partitions"] = count
    return partitioner


def preview_call(args: argparse.Namespace) -> TrackedCall:
    """The call a tracked Flower Datasets function would hand over: the same snapshot."""
    arguments: dict[str, object] = {}
    partitioner = None
    if args.partitioner is not None or args.num_partitions is not None:
        partitioner = _partitioner(args.partitioner or "IidPartitioner", args.num_partitions)
    if args.dataset is not None or args.subset is not None or args.split is not None:
        by_split = {args.split: partitioner} if partitioner and args.split else {}
        arguments["self"] = _FederatedDataset(args.dataset, args.subset, by_split)
        if args.split is not None:
            arguments["split"] = args.split
        if partitioner is not None and not by_split:
            arguments["partitioner"] = partitioner
    elif partitioner is not None:  # plot_label_distributions(partitioner, ...)
        arguments["partitioner"] = partitioner
    return TrackedCall.handed_over(args.event, args.module, arguments, SUCCESS, None)


def _source_note(pipeline: Pipeline) -> str:
    """Why a preview shows no source id, when it shows none."""
    path = pipeline.config.source_file
    if path is None:
        return "source: null here; no usable home folder, so each process sends a new id"
    if not pipeline.decision.enabled:
        return "source: null; telemetry is off, so no id is created"
    if os.path.lexists(path):
        return f"source: null here; {path} is not valid: the first event sent replaces it"
    return f"source: null here; the first event sent creates one in {path}"


def cmd_preview(args: argparse.Namespace) -> int:
    pipeline = Pipeline(_runtime.CONFIG, _runtime.random_uuid(), preview=True)
    body = pipeline.stamp(pipeline.build(preview_call(args)))
    if args.json:
        print(body.decode())
        return EXIT_OK
    enabled = pipeline.decision.enabled
    verdict = "would be sent" if enabled else "would NOT be sent"
    state = "enabled" if enabled else "disabled"
    print(f"# {verdict}: telemetry is {state} {pipeline.decision.reason}")
    print(f"# to {pipeline.config.endpoint} (nothing was sent, nothing was written)")
    payload = json.loads(body)
    if payload["context"].get("source") is None:
        print(f"# {_source_note(pipeline)}")
    print(json.dumps(payload, indent=2))
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    path = _runtime.CONFIG.source_file
    home = _runtime.CONFIG.home
    source = read_source(path)
    data: dict[str, Any] = {"source": source, "file": None if path is None else str(path)}
    if path is None:
        data["deleted"] = False
        _print(data, ["nothing to delete: no usable home folder (FLWR_HOME)"], as_json=args.json)
        return EXIT_OK
    waiting, recorded = len(_outbox.waiting(home)), len(_outbox.records(home))
    data["events_deleted"] = {"waiting": waiting, "recorded": recorded}
    if not _outbox.forget(home):
        data["deleted"] = False
        raise CommandError(f"cannot delete the outbox and record under {home}", data)
    lines = [f"deleted {waiting} waiting and {recorded} recorded event(s) under {home}"]
    if not path.exists():
        data["deleted"] = False
        lines.insert(0, f"no source id file at {path}")
        _print(data, lines, as_json=args.json)
        return EXIT_OK
    try:
        path.unlink()
    except OSError as error:
        data["deleted"] = False
        raise CommandError(f"cannot delete {path}: {error.strerror}", data) from error
    data["deleted"] = True
    lines = [
        f"deleted source id {source or '(unreadable)'} ({path})",
        *lines,
        "To have the events sent with this id deleted, email telemetry@flower.ai or ask in",
        "the #telemetry channel of the Flower Slack, quoting the id above.",
    ]
    _print(data, lines, as_json=args.json)
    return EXIT_OK


def cmd_log(args: argparse.Namespace) -> int:
    """What waits in the outbox and what the uploader did, with the exact bytes."""
    home = _runtime.CONFIG.home
    waiting = _outbox.waiting(home)[-args.n :] if args.n else []
    done = _outbox.records(home, args.n)
    dropped = _outbox.dropped(home)
    data: dict[str, Any] = {
        "home": home,
        "waiting": [_outbox.as_dict(entry) for entry in waiting],
        "recorded": [_outbox.as_dict(entry) for entry in done],
        "dropped": dropped,
    }
    lines = [f"waiting ({len(waiting)} shown):"]
    lines += [
        f"  {_when(e.time)} to {e.endpoint}: {e.body.decode('ascii', 'replace')}" for e in waiting
    ]
    lines.append(f"recorded ({len(done)} shown, oldest first):")
    lines += [
        f"  {_when(e.done or e.time)} {e.outcome}: {e.body.decode('ascii', 'replace')}"
        for e in done
    ]
    if any(dropped.values()):
        lines.append(f"dropped so far: {dropped}")
    _print(data, lines, as_json=args.json)
    return EXIT_OK


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _set_choice(args: argparse.Namespace, choice: str) -> int:
    """Store the user's choice under ``$FLWR_HOME``; nothing changes if it cannot."""
    home = _runtime.CONFIG.home
    data: dict[str, Any] = {"choice": choice, "file": None}
    if home is None:
        raise CommandError("cannot store the choice: no usable home folder (FLWR_HOME)", data)
    try:
        path = _choice.write_setting(home, choice)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CommandError(f"cannot store the choice under {home}: {reason}", data) from error
    data["file"] = path
    if choice == _choice.DISABLED:  # what waits is not sent either, now or later
        data["discarded"] = _outbox.discard_waiting(home)
    state = status()
    data["enabled"] = state.enabled
    data["reason"] = state.reason
    lines = [f"telemetry {choice} for every environment using {home} ({path})"]
    if choice == _choice.ENABLED and not state.enabled:
        lines.append(f"note: telemetry stays off here {state.reason}: off always wins")
    _print(data, lines, as_json=args.json)
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_choice(args, _choice.DISABLED)


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_choice(args, _choice.ENABLED)


class Commands:
    """The subcommands of one parser; adding one is one `add` call."""

    def __init__(self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
        self._commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self._common = common

    def add(
        self, name: str, run: Callable[[argparse.Namespace], int], summary: str, description: str
    ) -> argparse.ArgumentParser:
        """Register ``name``: ``summary`` is its line in ``--help``, ``description`` its own."""
        parser = self._commands.add_parser(
            name,
            parents=[self._common],
            help=summary,
            description=description,
            prog=f"{PROG} {name}",
        )
        parser.set_defaults(run=run)
        return parser


def _count(text: str) -> int:
    if not text.strip().isdecimal():
        message = f"{text!r} is not a whole number, 0 or more"
        raise argparse.ArgumentTypeError(message)
    return int(text)


def _add_preview_options(preview: argparse.ArgumentParser) -> None:
    preview.add_argument(
        "--event", default=PREVIEW_EVENT, metavar="NAME", help="event type (%(default)s)"
    )
    preview.add_argument(
        "--module",
        default=PREVIEW_MODULE,
        help="module of the tracked function; decides package_name (%(default)s)",
    )
    preview.add_argument("--dataset", metavar="NAME", help="dataset name, e.g. mnist")
    preview.add_argument("--subset", metavar="NAME", help="dataset subset")
    preview.add_argument("--split", metavar="NAME", help="split, e.g. train")
    preview.add_argument("--partitioner", metavar="CLASS", help="e.g. DirichletPartitioner")
    preview.add_argument("--num-partitions", type=_count, metavar="N", help="number of partitions")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo ``--json`` given before it.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect and control Flower Datasets' anonymous usage telemetry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    commands = Commands(parser, common)

    commands.add(
        "status",
        cmd_status,
        "whether telemetry is on, why, and its plugins",
        "Say whether telemetry is enabled and what decided it, where the anonymous id "
        "lives, and which plugins are loaded from which distribution. Writes nothing.",
    )
    preview = commands.add(
        "preview",
        cmd_preview,
        "print the exact payload an event would send now",
        "Build the event a tracked Flower Datasets call on this machine would send, with "
        "the real collectors, the stored id and the cached hardware facts, and print it. "
        "Sends nothing and writes nothing. The options describe the call.",
    )
    _add_preview_options(preview)
    commands.add(
        "forget",
        cmd_forget,
        "print, then delete, the anonymous source id",
        "Print the anonymous source id, then delete its file; a new random id is made "
        "with the next event sent. Quote the printed id to have its events deleted.",
    )
    log = commands.add(
        "log",
        cmd_log,
        "what waits in the outbox and what was delivered, byte for byte",
        "Show the events waiting in the outbox under $FLWR_HOME and the record of the "
        "last deliveries (time, outcome, the exact bytes sent), and what was dropped.",
    )
    log.add_argument(
        "-n", type=_count, default=20, metavar="N", help="show the last N of each (%(default)s)"
    )
    commands.add(
        "disable",
        cmd_disable,
        "turn telemetry off for good, for every environment of this user",
        "Store 'telemetry = disabled' in $FLWR_HOME/telemetry.conf (default ~/.flwr): "
        "every virtual environment, conda environment and notebook kernel that shares "
        "that home sends nothing from now on. Administrators: see README, 'machine-wide'.",
    )
    commands.add(
        "enable",
        cmd_enable,
        "undo 'disable' (any other opt-out still wins)",
        "Store 'telemetry = enabled' in $FLWR_HOME/telemetry.conf. A variable, the "
        "machine setting or a no-op plugin that says off still wins.",
    )
    return parser


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, wrong usage: argparse has printed
        return done.code if isinstance(done.code, int) else EXIT_OK
    args.json = getattr(args, "json", False)
    try:
        code: int = args.run(args)
    except CommandError as error:
        if args.json:
            print(json.dumps({**error.data, "error": str(error)}, indent=2))
        else:
            print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as error:  # one clear line, never a traceback
        message = f"{type(error).__name__}: {error}"
        if args.json:
            print(json.dumps({"error": message}, indent=2))
        else:
            print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _stdout_to_devnull() -> None:
    """After a closed pipe: the interpreter's final flush must not fail (and print) too."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: returns the exit status."""
    try:
        code = _run(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
