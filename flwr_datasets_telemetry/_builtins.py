"""Every fact about the built-in plugins, in one table.

A built-in is registered under its name exactly like an entry point of that name (so an
entry point can replace or remove it, and ``FLWR_TELEMETRY_DISABLE_COLLECTORS`` can
block it), but from this table rather than from entry points.
"""

from __future__ import annotations

from typing import Final, NamedTuple

#: The entry-point group third-party plugins register in (also pluggy's project name).
GROUP: Final = "flwr_datasets_telemetry"


class Builtin(NamedTuple):
    name: str
    module: str
    #: Where its answer lands in ``context``; ``None`` for ``names`` (it fills
    #: ``event_details``) and for transports (they answer nothing to the payload).
    section: str | None
    transport: bool = False


BUILTINS: Final = (
    Builtin("version", "flwr_datasets_telemetry.collectors.version", "package"),
    Builtin("platform", "flwr_datasets_telemetry.collectors.platform", "platform"),
    Builtin("hardware", "flwr_datasets_telemetry.collectors.hardware", "hw"),
    Builtin("names", "flwr_datasets_telemetry.collectors.names", None),
    Builtin("environment", "flwr_datasets_telemetry.collectors.environment", "env"),
    Builtin("http", "flwr_datasets_telemetry.transports.http", None, transport=True),
)
#: The collector whose answer is the event's details rather than a context section.
DETAILS_COLLECTOR: Final = "names"
#: Built-in name -> its context section.
SECTIONS: Final = {b.name: b.section for b in BUILTINS if b.section is not None}
#: Context keys no plugin may take: identity, date, and the built-ins' sections.
RESERVED: Final = frozenset({"source", "cluster", "date", *SECTIONS.values()})
