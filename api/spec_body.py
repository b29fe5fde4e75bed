"""Reading a spec from a request body (JSON or YAML) and turning validation errors into
answers a person can act on."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import HTTPException
from pydantic import ValidationError

from ml.spec import parse_spec

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def read_document(raw: bytes, content_type: str) -> Any:
    """Parse a JSON or YAML body; 400 with the line and column at fault when malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, detail=f"the body is not UTF-8 text (byte {exc.start})") from exc
    if any(t in content_type for t in YAML_TYPES):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise HTTPException(400, detail=f"malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPException(400, detail=f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as {loc, msg, type}: the field path and what is allowed there."""
    return [
        {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validate_spec(document: Any) -> Any:
    """The typed spec, or a 422 naming each bad field and its allowed values."""
    if not isinstance(document, dict):
        raise HTTPException(422, detail=[{"loc": ["body"], "msg": "the spec must be a mapping", "type": "type"}])
    try:
        return parse_spec(document)
    except ValidationError as exc:
        raise HTTPException(422, detail=validation_detail(exc)) from exc
