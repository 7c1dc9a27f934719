"""``flwr-datasets-telemetry``: is it on and why, what exactly is sent, forget my id.

Exit codes: 0 success; 1 the command could not do its job (``forget`` could not
delete the file); 2 wrong usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from . import _runtime
from ._call import TrackedCall
from ._control import Status, status
from ._identity import read_source
from ._pipeline import Pipeline

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK, EXIT_FAILED = 0, 1


def _print(data: dict[str, Any], lines: list[str], *, as_json: bool) -> None:
    print(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def _status_data(state: Status) -> dict[str, Any]:
    return {
        "enabled": state.enabled,
        "reason": state.reason,
        "logging": state.logging,
        "endpoint": state.endpoint,
        "source_file": None if state.source_file is None else str(state.source_file),
        "source": state.source,
        "plugins": state.plugins,
        "blocked": list(state.blocked),
        "problems": list(state.problems),
    }


def cmd_status(args: argparse.Namespace) -> int:
    state = status()
    lines = [
        f"telemetry: {'enabled' if state.enabled else 'disabled'} {state.reason}",
        f"logging:   {'on' if state.logging else 'off'} (FLWR_TELEMETRY_LOGGING)",
        f"endpoint:  {state.endpoint}",
        f"source id: {state.source or 'none yet (created with the first event sent)'}",
        f"id file:   {state.source_file or 'none (no home folder)'}",
        "plugins:",
        *(f"  {name:<10} from {origin}" for name, origin in sorted(state.plugins.items())),
    ]
    if state.blocked:
        lines.append(f"blocked:   {', '.join(state.blocked)} (FLWR_TELEMETRY_DISABLE_COLLECTORS)")
    lines += [f"problem:   {problem}" for problem in state.problems]
    _print(_status_data(state), lines, as_json=args.json)
    return EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    pipeline = Pipeline(_runtime.CONFIG, _runtime.random_uuid(), preview=True)
    call = TrackedCall(args.event, "flwr_datasets_telemetry.cli")
    body = pipeline.stamp(pipeline.build(call))
    if args.json:
        print(body.decode())
    else:
        verdict = "would be sent" if pipeline.decision.enabled else "would NOT be sent"
        state = "enabled" if pipeline.decision.enabled else "disabled"
        print(f"# {verdict}: telemetry is {state} {pipeline.decision.reason}")
        print(f"# to {_runtime.CONFIG.endpoint} (nothing was sent, nothing was written)")
        print(json.dumps(json.loads(body), indent=2))
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    path = _runtime.CONFIG.source_file
    source = read_source(path)
    data: dict[str, Any] = {"source": source, "file": None if path is None else str(path)}
    if path is None or not path.exists():
        data["deleted"] = False
        _print(data, [f"nothing to delete: no source id file at {path}"], as_json=args.json)
        return EXIT_OK
    try:
        path.unlink()
    except OSError as error:
        print(f"flwr-datasets-telemetry: cannot delete {path}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    data["deleted"] = True
    lines = [
        f"deleted source id {source or '(unreadable)'} ({path})",
        "To have the events sent with this id deleted, email telemetry@flower.ai or ask in",
        "the #telemetry channel of the Flower Slack, quoting the id above.",
    ]
    _print(data, lines, as_json=args.json)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo ``--json`` given before it.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = argparse.ArgumentParser(
        prog="flwr-datasets-telemetry",
        description="Inspect and control Flower Datasets' anonymous usage telemetry.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "status", parents=[common], help="whether telemetry is on, why, and its plugins"
    ).set_defaults(run=cmd_status)
    preview = commands.add_parser(
        "preview", parents=[common], help="print the exact payload an event would send now"
    )
    preview.add_argument("--event", default="preview", help="event type to preview")
    preview.set_defaults(run=cmd_preview)
    commands.add_parser(
        "forget", parents=[common], help="print, then delete, the anonymous source id"
    ).set_defaults(run=cmd_forget)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    try:
        code: int = args.run(args)
    except Exception as error:  # one clear line, never a traceback
        print(f"flwr-datasets-telemetry: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return code
