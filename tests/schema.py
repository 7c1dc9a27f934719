"""The shipped JSON Schema, applied to every payload the suite sees."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = json.loads(
    resources.files("flwr_datasets_telemetry").joinpath("payload.schema.json").read_text()
)
Draft202012Validator.check_schema(SCHEMA)
_validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validated(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload``, after checking it against the schema (raises if it does not fit)."""
    _validator.validate(payload)
    return payload
