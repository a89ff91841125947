"""InstructLab's JSON schemas, compiled once into plain Python checks.

The schemas of the `instructlab-schema` package use a small part of JSON Schema 2020-12: `type`,
`required`, `properties`, `unevaluatedProperties: false`, `items`, `minItems`, `uniqueItems`,
`minLength`, `const` and a `$ref` to the `version.json` beside them. `compile_schema` turns a schema
into a function that returns every violation, about ten times faster than a general validator;
a schema that uses any other keyword falls back to `jsonschema` itself, so the rules stay exactly
the package's. `tests/taxonomy/test_schema.py` checks both agree on the whole community corpus.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graftlm.yamlpos import Path_

# Keywords the compiled checks implement; the rest only document the schema.
_CHECKED = {"type", "required", "properties", "unevaluatedProperties", "additionalProperties", "items",
            "minItems", "uniqueItems", "minLength", "const", "$ref"}
_ANNOTATIONS = {"title", "description", "examples", "$comment", "deprecated", "default", "$schema", "$id"}


@dataclass
class Violation:
    """One broken rule, shaped like a `jsonschema.ValidationError` (the attributes the messages use)."""

    validator: str
    validator_value: Any
    instance: Any
    absolute_path: Path_
    schema: dict[str, Any] = field(repr=False)
    message: str = ""


Check = Callable[[Any, Path_, list[Violation]], None]


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float))
    return False


def _canon(value: Any) -> Any:
    """A hashable form with JSON Schema's equality (1 == 1.0, but true != 1)."""
    if isinstance(value, dict):
        return ("o", frozenset((k, _canon(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", tuple(_canon(v) for v in value))
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    return ("x", repr(value))


class UnsupportedSchema(Exception):
    pass


def compile_schema(schema: dict[str, Any], load_ref: Callable[[str], dict[str, Any]]) -> Check:
    """Compile one (sub)schema; `load_ref` returns the schema a `$ref` names."""
    unknown = set(schema) - _CHECKED - _ANNOTATIONS
    if unknown:
        raise UnsupportedSchema(", ".join(sorted(unknown)))
    checks: list[Check] = []
    ref_props: set[str] = set()

    if "$ref" in schema:
        target = load_ref(schema["$ref"])
        ref_check = compile_schema(target, load_ref)
        ref_props = set(target.get("properties", {}))
        checks.append(ref_check)
    if "type" in schema:
        tname = schema["type"]
        names = [tname] if isinstance(tname, str) else list(tname)

        def check_type(v: Any, p: Path_, out: list[Violation]) -> None:
            if not any(_is_type(v, n) for n in names):
                out.append(Violation("type", tname, v, p, schema, f"{v!r} is not of type {tname!r}"))

        checks.append(check_type)
    if "const" in schema:
        const = schema["const"]
        ckey = _canon(const)

        def check_const(v: Any, p: Path_, out: list[Violation]) -> None:
            if _canon(v) != ckey:
                out.append(Violation("const", const, v, p, schema, f"{const!r} was expected"))

        checks.append(check_const)
    if "minLength" in schema:
        n_len = schema["minLength"]

        def check_len(v: Any, p: Path_, out: list[Violation]) -> None:
            if isinstance(v, str) and len(v) < n_len:
                out.append(Violation("minLength", n_len, v, p, schema, f"{v!r} is too short"))

        checks.append(check_len)
    if "required" in schema:
        required = list(schema["required"])

        def check_required(v: Any, p: Path_, out: list[Violation]) -> None:
            if isinstance(v, dict):
                for k in required:
                    if k not in v:
                        out.append(Violation("required", [k], v, p, schema, f"{k!r} is a required property"))

        checks.append(check_required)
    props = {k: compile_schema(s, load_ref) for k, s in schema.get("properties", {}).items()}
    if props:
        def check_props(v: Any, p: Path_, out: list[Violation]) -> None:
            if isinstance(v, dict):
                for k, sub in props.items():
                    if k in v:
                        sub(v[k], (*p, k), out)

        checks.append(check_props)
    for kw in ("unevaluatedProperties", "additionalProperties"):
        if kw not in schema:
            continue
        if schema[kw] is not False:
            raise UnsupportedSchema(f"{kw} other than false")
        allowed = set(props) | (ref_props if kw == "unevaluatedProperties" else set())

        def check_extra(v: Any, p: Path_, out: list[Violation], kw: str = kw, allowed: set[str] = allowed) -> None:
            if isinstance(v, dict):
                extra = [k for k in v if k not in allowed]
                if extra:
                    out.append(Violation(kw, False, v, p, schema,
                                         f"properties are not allowed ({', '.join(map(repr, extra))} unexpected)"))

        checks.append(check_extra)
    if "minItems" in schema:
        n_items = schema["minItems"]

        def check_min_items(v: Any, p: Path_, out: list[Violation]) -> None:
            if isinstance(v, list) and len(v) < n_items:
                out.append(Violation("minItems", n_items, v, p, schema, "should be non-empty"))

        checks.append(check_min_items)
    if schema.get("uniqueItems") is True:
        def check_unique(v: Any, p: Path_, out: list[Violation]) -> None:
            if isinstance(v, list) and len({_canon(x) for x in v}) != len(v):
                out.append(Violation("uniqueItems", True, v, p, schema, "has non-unique elements"))

        checks.append(check_unique)
    if "items" in schema:
        if not isinstance(schema["items"], dict):
            raise UnsupportedSchema("items that is not a schema")
        item_check = compile_schema(schema["items"], load_ref)

        def check_items(v: Any, p: Path_, out: list[Violation]) -> None:
            if isinstance(v, list):
                for i, x in enumerate(v):
                    item_check(x, (*p, i), out)

        checks.append(check_items)

    def check(v: Any, p: Path_, out: list[Violation]) -> None:
        for c in checks:
            c(v, p, out)

    return check


def load_schema_json(version: int, name: str) -> dict[str, Any] | None:
    """`v{version}/{name}.json` from the instructlab-schema package, or None if it has no such file."""
    return _load_schema_json(version, name)


@functools.cache
def _load_schema_json(version: int, name: str) -> dict[str, Any] | None:
    from instructlab.schema import schema_base

    f = schema_base().joinpath(f"v{version}", f"{name}.json")
    if not f.is_file():
        return None
    result: dict[str, Any] = json.loads(f.read_text(encoding="utf-8"))
    return result


@functools.cache
def checker(version: int, name: str) -> Callable[[Any], list[Violation]]:
    """A function returning every violation of schema `name` (`knowledge`, `compositional_skills`) at
    `version`, compiled once per process."""
    schema = load_schema_json(version, name)
    if schema is None:
        raise KeyError(f"v{version}/{name}.json")

    def load_ref(ref: str) -> dict[str, Any]:
        target = load_schema_json(version, ref.rsplit("/", 1)[-1].removesuffix(".json"))
        if target is None:
            raise UnsupportedSchema(f"$ref {ref}")
        return target

    try:
        compiled = compile_schema(schema, load_ref)
    except UnsupportedSchema:
        return _jsonschema_checker(version, name)

    def run(instance: Any) -> list[Violation]:
        out: list[Violation] = []
        compiled(instance, (), out)
        return out

    return run


def _jsonschema_checker(version: int, name: str) -> Callable[[Any], list[Violation]]:
    """The general validator (slower), for schemas the compiled checks do not cover."""
    validator = jsonschema_validator(version, name)

    def run(instance: Any) -> list[Violation]:
        return [Violation(e.validator, e.validator_value, e.instance, tuple(e.absolute_path), e.schema, e.message)
                for e in validator.iter_errors(instance)]

    return run


@functools.cache
def jsonschema_validator(version: int, name: str) -> Any:
    """The `jsonschema` validator of one schema, as InstructLab builds it (also the tests' oracle)."""
    from jsonschema.validators import validator_for
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource
    from referencing.jsonschema import DRAFT202012

    def retrieve(uri: str) -> Resource:
        contents = load_schema_json(version, uri.rsplit("/", 1)[-1].removesuffix(".json"))
        if contents is None:
            raise NoSuchResource(ref=uri)  # type: ignore[call-arg]
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    schema = load_schema_json(version, name)
    cls = validator_for(schema)
    return cls(schema, registry=Registry(retrieve=retrieve))  # type: ignore[call-arg]
