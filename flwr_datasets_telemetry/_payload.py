"""Where an event is built: collector answers in, one JSON-safe payload out.

Shape (Flower's v1 event, plus ``schema_version``)::

    {"schema_version": 1, "event_type": ..., "event_details": {...},
     "context": {"source", "cluster", "date", "package", "platform", "hw", <plugin>...}}

Every value goes through `sanitize`: only JSON scalars, lists and string-keyed
mappings survive; strings, lists, mappings and nesting are capped, and so is the work:
an answer is read for at most `MAX_VALUES` values (a hostile or broken plugin may hand
over a lazy mapping of millions of keys, valid or not).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._builtins import DETAILS_COLLECTOR, RESERVED, SECTIONS

SCHEMA_VERSION: Final = 1
MAX_STRING: Final = 200
MAX_ITEMS: Final = 32
MAX_DEPTH: Final = 4
#: Values (kept or not) read from one answer, nested ones included; then it is cut.
MAX_VALUES: Final = 256
#: Keys looked at in one mapping, valid or not (each also counts in `MAX_VALUES`).
MAX_LOOKED: Final = 4 * MAX_ITEMS


_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DROP: Final = object()


def _clean(value: Any, depth: int, notes: list[str] | None, where: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -(2**53) <= value <= 2**53:
            return value
    elif isinstance(value, float):
        if math.isfinite(value):
            return value
    elif isinstance(value, str):
        return value[:MAX_STRING]
    elif depth < MAX_DEPTH and isinstance(value, Mapping):
        return sanitize(value, depth + 1, notes, where, budget)
    elif depth < MAX_DEPTH and isinstance(value, (list, tuple)):
        items = [
            _clean(item, depth + 1, notes, f"{where}[]", budget)
            for item in itertools.takewhile(lambda _: budget[0] > 0, value[:MAX_ITEMS])
        ]
        return [item for item in items if item is not _DROP]
    if notes is not None:
        notes.append(f"{where}: {type(value).__name__} value dropped (not JSON, or too deep)")
    return _DROP


def sanitize(
    mapping: Mapping[Any, Any],
    depth: int = 0,
    notes: list[str] | None = None,
    where: str = "",
    budget: list[int] | None = None,
) -> dict[str, Any]:
    """A JSON-safe copy: valid string keys, JSON values, everything capped.

    What is dropped is described in ``notes`` when given (shown with logging on).
    ``budget`` holds how many more values may be read (`MAX_VALUES` for a new answer).
    """
    if budget is None:
        budget = [MAX_VALUES]
    clean: dict[str, Any] = {}
    for looked, (key, value) in enumerate(mapping.items()):
        if len(clean) >= MAX_ITEMS or looked >= MAX_LOOKED or budget[0] <= 0:
            if notes is not None:
                notes.append(f"{where or 'mapping'}: items after the first {looked} dropped")
            break
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            budget[0] -= 1
            if notes is not None:
                notes.append(
                    f"{where or 'mapping'}: key {str(key)[:40]!r} dropped (not a valid key)"
                )
            continue
        cleaned = _clean(value, depth, notes, f"{where}.{key}" if where else key, budget)
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
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The payload, without ``context.date``: the caller adds it when sending.

    An answer that cannot be read (a mapping whose iteration raises, say) is lost on
    its own and described in ``notes``.
    """
    details = sanitize(maintainer_details, notes=notes, where="details")
    context: dict[str, Any] = dict(identity)
    for plugin, answer in answers:
        try:
            if not isinstance(answer, Mapping):
                if answer is not None and notes is not None:
                    notes.append(f"plugin {plugin!r}: {type(answer).__name__} answer ignored")
                continue
            if plugin == DETAILS_COLLECTOR:
                details.update(sanitize(answer, notes=notes, where=plugin))
                continue
            section = section_for(plugin)
            if section is not None:
                context[section] = sanitize(answer, notes=notes, where=plugin)
        except BaseException as error:
            if notes is not None:
                notes.append(f"plugin {plugin!r}: answer lost: {type(error).__name__}")
    return {
        "schema_version": SCHEMA_VERSION,
        "event_type": str(event_type)[:MAX_STRING],
        "event_details": details,
        "context": context,
    }


def dumps(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are logged and sent (ASCII, so UTF-8 is the same bytes)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()
