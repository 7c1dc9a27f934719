"""Where an event is built: collector answers in, one JSON-safe payload out.

Shape (Flower's v1 event, plus ``schema_version``)::

    {"schema_version": 1, "event_type": ..., "event_details": {...},
     "context": {"source", "cluster", "date", "package", "platform", "hw", <plugin>...}}

Every value goes through `sanitize`: only JSON scalars, lists and string-keyed
mappings survive; strings, lists, mappings and nesting are capped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

SCHEMA_VERSION: Final = 1
MAX_STRING: Final = 200
MAX_ITEMS: Final = 32
MAX_DEPTH: Final = 4

#: Built-in collector name -> where its answer lands; ``names`` fills event_details.
SECTIONS: Final = {
    "version": "package",
    "platform": "platform",
    "hardware": "hw",
    "environment": "env",
}
DETAILS_COLLECTOR: Final = "names"
#: Context keys no plugin may take.
RESERVED: Final = frozenset({"source", "cluster", "date", *SECTIONS.values()})

_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DROP: Final = object()


def _clean(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**53) <= value <= 2**53 else _DROP
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    if isinstance(value, str):
        return value[:MAX_STRING]
    if depth >= MAX_DEPTH:
        return _DROP
    if isinstance(value, Mapping):
        return sanitize(value, depth + 1)
    if isinstance(value, (list, tuple)):
        items = (_clean(item, depth + 1) for item in value[:MAX_ITEMS])
        return [item for item in items if item is not _DROP]
    return _DROP


def sanitize(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    """A JSON-safe copy: valid string keys, JSON values, everything capped."""
    clean: dict[str, Any] = {}
    for key, value in mapping.items():
        if len(clean) >= MAX_ITEMS:
            break
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            continue
        cleaned = _clean(value, depth)
        if cleaned is not _DROP:
            clean[key] = cleaned
    return clean


def section_for(plugin: str) -> str | None:
    """Where a collector's facts land, or ``None`` if its name cannot have a section."""
    if plugin in SECTIONS:
        return SECTIONS[plugin]
    if plugin == DETAILS_COLLECTOR or plugin in RESERVED or not _KEY.fullmatch(plugin):
        return None
    return plugin


def assemble(
    event_type: str,
    maintainer_details: Mapping[str, Any],
    answers: Iterable[tuple[str, Any]],
    identity: Mapping[str, str | None],
) -> dict[str, Any]:
    """The payload, without ``context.date``: the caller adds it when sending."""
    details = sanitize(maintainer_details)
    context: dict[str, Any] = dict(identity)
    for plugin, answer in answers:
        if not isinstance(answer, Mapping):
            continue
        if plugin == DETAILS_COLLECTOR:
            details.update(sanitize(answer))
            continue
        section = section_for(plugin)
        if section is not None:
            context[section] = sanitize(answer)
    return {
        "schema_version": SCHEMA_VERSION,
        "event_type": str(event_type)[:MAX_STRING],
        "event_details": details,
        "context": context,
    }


def dumps(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are logged and sent (ASCII, so UTF-8 is the same bytes)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()
