"""Reading a spec from a request body (JSON or YAML) and turning validation errors into
answers a person can act on.

Every parser here is bounded before it expands anything: YAML aliases are counted on the node
graph (a 0.5 KB alias bomb would otherwise expand to gigabytes), duplicate keys and recursive
anchors are refused, and the parsed document's depth, size, strings and integers are bounded
before pydantic sees it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import HTTPException
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ml.spec import SpecVersionError, parse_spec

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
JSON_TYPES = ("application/json",)
MAX_DEPTH = 32  # nesting of objects and lists
MAX_NODES = 20_000  # values in the whole document, aliases expanded
MAX_STRING = 10_000  # characters in one string
MAX_INTEGER = 2**63  # |an integer|; ids, seeds and sizes are far below it


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (a silent override hides mistakes)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node) -> int:
    """Values the node graph holds once every alias is expanded (shared nodes counted each time
    they are used), computed on the graph without expanding it; a recursive anchor is refused."""
    size: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(id(node))
            size[id(node)] = min(MAX_NODES + 1, 1 + sum(size[id(c)] for c in children))
            continue
        if id(node) in open_nodes:
            raise HTTPException(400, detail="malformed YAML: an anchor refers to itself (a recursive structure)")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _load_yaml(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_NODES:
            raise HTTPException(413, detail=f"the spec expands to more than {MAX_NODES} values (YAML aliases count)")
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_document(raw: bytes, content_type: str) -> Any:
    """Parse a JSON or YAML body within bounds; 400 with the line and column at fault when
    malformed, 413 past a size bound, 415 for any other content type (a form or text/plain
    body is what a cross-site page can send without asking)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in YAML_TYPES and media not in JSON_TYPES:
        raise HTTPException(415, detail="send the spec as application/json or application/yaml")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, detail=f"the body is not UTF-8 text (byte {exc.start})") from exc
    try:
        document = _load_yaml(text) if media in YAML_TYPES else json.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise HTTPException(400, detail=f"malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    except json.JSONDecodeError as exc:
        raise HTTPException(400, detail=f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise HTTPException(400, detail=f"the spec is nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise HTTPException(400, detail=f"malformed spec: {exc}") from exc
    check_bounds(document)
    return document


def check_bounds(document: Any) -> None:
    """Refuse a parsed document that is too deep, too big, or holds an oversized string or
    integer (400/413 naming the bound), walking it without recursion."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise HTTPException(413, detail=f"the spec holds more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise HTTPException(400, detail=f"the spec is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise HTTPException(413, detail=f"a string in the spec is longer than {MAX_STRING} characters")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            raise HTTPException(400, detail=f"an integer in the spec is larger than {MAX_INTEGER}")
        if isinstance(value, dict):
            stack.extend((k, depth + 1) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def validation_detail(exc: ValidationError, kind: str | None = None) -> list[dict[str, Any]]:
    """Pydantic errors as {loc, msg, type}: the field path and what is allowed there. With the
    spec's `kind`, the union's tag that pydantic puts first is left out of the path
    (`train.optimizer.lr`, not `train.train.optimizer.lr`)."""

    def path(loc: tuple[Any, ...]) -> list[Any]:
        return list(loc[1:]) if kind is not None and loc[:1] == (kind,) else list(loc)

    return [
        {"loc": ["body", *path(tuple(err["loc"]))], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validate_spec(document: Any) -> Any:
    """The typed spec, or a 422 naming each bad field and its allowed values."""
    if not isinstance(document, dict):
        raise HTTPException(422, detail=[{"loc": ["body"], "msg": "the spec must be a mapping", "type": "type"}])
    try:
        return parse_spec(document)
    except ValidationError as exc:
        kind = document.get("kind", "train")
        raise HTTPException(422, detail=validation_detail(exc, kind if isinstance(kind, str) else None)) from exc
    except SpecVersionError as exc:
        raise HTTPException(
            422, detail=[{"loc": ["body", "spec_version"], "msg": str(exc), "type": "value_error"}]
        ) from exc
