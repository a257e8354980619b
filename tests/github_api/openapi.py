"""GitHub's published OpenAPI description, indexed for the local test server.

The description comes from the npm package ``@octokit/openapi`` (pinned in
``package.json`` beside this file). It is parsed once per process: matching a
request to an operation, finding the documented success status and its example
payload, and validating JSON against the documented schemas.

The description is OpenAPI 3.0, whose schemas say ``nullable: true`` where JSON
Schema says ``type: [..., "null"]``; :func:`_allow_null` rewrites those in place
after loading so that a draft-4 validator reads them as GitHub means them.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft4Validator

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules" / "@octokit"
DESCRIPTION = NODE_MODULES / "openapi" / "generated" / "api.github.com.json"
WEBHOOK_EXAMPLES = NODE_MODULES / "webhooks-examples" / "api.github.com" / "index.json"
INSTALL_HINT = "install GitHub's published API description: npm ci --prefix tests/github_api"

METHODS = ("get", "post", "put", "patch", "delete", "head")
_PARAM = re.compile(r"\{([^}]+)\}")
# Parameters that GitHub lets span several path segments (a file path, a git ref, "a...b").
_MULTI_SEGMENT = ("{path}", "{ref}", "{basehead}")


class MissingPackagesError(RuntimeError):
    """The npm packages that hold GitHub's description are not installed."""


@dataclass(frozen=True)
class Operation:
    """One documented method on one templated path."""

    method: str
    template: str
    spec: dict[str, Any] = field(repr=False, compare=False)

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", ""))


@dataclass(frozen=True)
class Match:
    """An operation plus the path parameters taken from the request path."""

    operation: Operation
    params: dict[str, str]


@dataclass(frozen=True)
class _Route:
    operation: Operation
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    specificity: tuple[int, ...]


def _route(operation: Operation, greedy_tail: bool) -> _Route:
    """Compile a path template; a parameter matches one segment (or the rest, if greedy)."""
    segments = operation.template.strip("/").split("/")
    names: list[str] = []
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        pieces = _PARAM.split(segment)
        regex = ""
        for position, piece in enumerate(pieces):
            if position % 2:
                names.append(piece)
                regex += "(.+)" if greedy_tail and last else "([^/]+)"
            else:
                regex += re.escape(piece)
        parts.append(regex)
    specificity = tuple(1 if "{" in s else 0 for s in segments)
    pattern = re.compile("/" + "/".join(parts))
    return _Route(operation, pattern, tuple(names), specificity)


def _allow_null(node: Any) -> None:
    """Rewrite OpenAPI ``nullable: true`` into JSON Schema, in place, recursively."""
    if isinstance(node, list):
        for item in node:
            _allow_null(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key not in ("example", "examples"):
            _allow_null(value)
    if node.get("nullable") is not True:
        return
    del node["nullable"]
    if isinstance(node.get("type"), str) and "$ref" not in node:
        node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
    else:
        original = dict(node)
        node.clear()
        node["anyOf"] = [original, {"type": "null"}]


class OpenAPI:
    """The parsed description: routing, examples and schema validation."""

    def __init__(self, document: dict[str, Any]) -> None:
        _allow_null(document["paths"])
        _allow_null(document["components"]["schemas"])
        self.document = document
        self.version = str(document["info"]["version"])
        self._validator = Draft4Validator(document)
        self._routes: dict[tuple[str, int], list[_Route]] = {}
        self._greedy: dict[str, list[_Route]] = {}
        self._by_id: dict[str, Operation] = {}
        for operation in self._operations():
            self._by_id[operation.operation_id] = operation
            depth = operation.template.count("/")
            self._routes.setdefault((operation.method, depth), []).append(_route(operation, False))
            if operation.template.endswith(_MULTI_SEGMENT):
                self._greedy.setdefault(operation.method, []).append(_route(operation, True))
        for routes in [*self._routes.values(), *self._greedy.values()]:
            routes.sort(key=lambda r: (-len(r.specificity), r.specificity))

    def _operations(self) -> Iterator[Operation]:
        for template, item in self.document["paths"].items():
            for method in METHODS:
                if method in item:
                    yield Operation(method.upper(), template, item[method])

    def operation(self, operation_id: str) -> Operation:
        """The operation with a documented ``operationId`` such as ``issues/create-comment``."""
        return self._by_id[operation_id]

    def match(self, method: str, path: str) -> Match | None:
        """The documented operation for ``method path`` (literal segments win), or None."""
        method = method.upper()
        depth = path.rstrip("/").count("/") or 1
        for routes in (self._routes.get((method, depth)), self._greedy.get(method)):
            for route in routes or []:
                found = route.pattern.fullmatch(path.rstrip("/") or "/")
                if found:
                    values = (unquote(value) for value in found.groups())
                    return Match(route.operation, dict(zip(route.names, values, strict=True)))
        return None

    def query_parameters(self, operation: Operation) -> frozenset[str]:
        """The names of an operation's documented query parameters."""
        parameters = [self.resolve(p) for p in operation.spec.get("parameters", [])]
        return frozenset(p["name"] for p in parameters if p.get("in") == "query")

    def resolve(self, node: Any) -> Any:
        """Follow ``$ref`` pointers (``#/components/...``) until a real node."""
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def success_status(self, operation: Operation) -> int:
        """The lowest documented 2xx status of an operation."""
        statuses = sorted(int(s) for s in operation.spec["responses"] if s.startswith("2"))
        return statuses[0] if statuses else 200

    def _json_content(self, operation: Operation, status: int) -> dict[str, Any] | None:
        response = self.resolve(operation.spec["responses"].get(str(status)))
        if not response:
            return None
        content: dict[str, Any] | None = response.get("content", {}).get("application/json")
        return content

    def example(self, operation: Operation, status: int) -> Any:
        """A fresh copy of the first published example for a response, or None."""
        content = self._json_content(operation, status)
        if content is None:
            return None
        if "example" in content:
            return copy.deepcopy(content["example"])
        for example in content.get("examples", {}).values():
            return copy.deepcopy(self.resolve(example).get("value"))
        return None

    def response_schema(self, operation: Operation, status: int) -> dict[str, Any] | None:
        content = self._json_content(operation, status)
        return None if content is None else content.get("schema")

    def request_schema(self, operation: Operation) -> tuple[dict[str, Any] | None, bool]:
        """The JSON request body schema and whether a body is required."""
        body = self.resolve(operation.spec.get("requestBody"))
        if not body:
            return None, False
        content = body.get("content", {}).get("application/json", {})
        return content.get("schema"), bool(body.get("required"))

    def component_example(self, name: str) -> Any:
        """A fresh copy of ``#/components/examples/<name>``'s value."""
        return copy.deepcopy(self.document["components"]["examples"][name]["value"])

    def schema(self, name: str) -> dict[str, Any]:
        """``#/components/schemas/<name>`` (refs inside resolve against the description)."""
        return {"$ref": f"#/components/schemas/{name}"}

    def errors(self, instance: Any, schema: dict[str, Any]) -> list[str]:
        """Every way ``instance`` breaks ``schema``, as readable lines (empty if valid)."""
        validator = self._validator.evolve(schema=schema)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]


@functools.cache
def load_description(path: Path = DESCRIPTION) -> OpenAPI:
    """Parse GitHub's description once per process (about half a second)."""
    if not path.exists():
        raise MissingPackagesError(f"{path} is missing; {INSTALL_HINT}")
    with path.open(encoding="utf-8") as stream:
        return OpenAPI(json.load(stream))


@functools.cache
def _webhook_index(path: Path = WEBHOOK_EXAMPLES) -> dict[str, list[dict[str, Any]]]:
    if not path.exists():
        raise MissingPackagesError(f"{path} is missing; {INSTALL_HINT}")
    with path.open(encoding="utf-8") as stream:
        return {entry["name"]: entry["examples"] for entry in json.load(stream)}


def webhook_example(
    event: str, action: str | None = None, where: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """A fresh copy of GitHub's first published ``event`` payload that fits."""
    for example in _webhook_index()[event]:
        fits = action is None or example.get("action") == action
        if fits and (where is None or where(example)):
            return copy.deepcopy(example)
    raise KeyError(f"no published {event} example with action {action!r} that fits")
