"""Typed configuration: one `Recipe` with a section per stage. YAML recipes load into it.

Each section lives in its own module; this one assembles them and loads recipe files with errors
that name the file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from graftlm.config.base import Section
from graftlm.config.evaluate import EvalConfig
from graftlm.config.generate import GenerateConfig
from graftlm.config.teacher import TeacherConfig
from graftlm.config.train import MixConfig, TrainConfig
from graftlm.errors import ConfigError, Location
from graftlm.yamlpos import compose, duplicate_keys, field_name, lookup, positions

__all__ = [
    "EvalConfig",
    "GenerateConfig",
    "MixConfig",
    "Recipe",
    "Section",
    "TeacherConfig",
    "TrainConfig",
    "load_recipe",
    "recipe_from_dict",
]


class Recipe(Section):
    """A whole run: teacher, judge, generation, mixing, training and evaluation."""

    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    """The model that generates synthetic data."""

    judge: TeacherConfig | None = None
    """The model that judges generated data and evaluation answers; None means the teacher."""

    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    """Synthetic data generation."""

    mix: MixConfig = Field(default_factory=MixConfig)
    """How generated data becomes phase datasets."""

    train: TrainConfig = Field(default_factory=TrainConfig)
    """Training of the student."""

    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Evaluation of base and trained student."""

    @property
    def judge_or_teacher(self) -> TeacherConfig:
        return self.judge or self.teacher


def _explain(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key; check the spelling against `graft config --explain`"
    if kind == "missing":
        return "required key is missing"
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def override_source(loc: tuple[Any, ...], overrides: dict[str, Any] | None) -> str | None:
    """`--set KEY` when the value at `loc` (or one above it) came from the override `KEY`, else None."""
    for key in overrides or {}:
        parts = tuple(key.split("."))
        if tuple(str(p) for p in loc[:len(parts)]) == parts:
            return f"--set {key}"
    return None


def recipe_from_dict(data: Any, *, source: str = "<recipe>", positions: dict | None = None,
                     overrides: dict[str, Any] | None = None) -> Recipe:
    """Validate a mapping into a Recipe; errors carry file, line and field, or the `--set KEY` that gave
    the bad value when `overrides` (dotted keys applied to `data`) holds it."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            "a recipe must be a YAML mapping of sections (teacher, generate, train, ...)",
            location=Location(source, 1),
        )
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(first["loc"])
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        from_set = override_source(loc, overrides)
        if from_set is not None:
            raise ConfigError(f"{_explain(first)}{more}", location=Location(from_set, field=field_name(loc)),
                              hint=f"fix the value given with {from_set}=VALUE; `graft config --explain` lists "
                                   "every key with its documentation") from None
        pos = lookup(positions or {}, (*loc, "<key>")) or lookup(positions or {}, loc)
        raise ConfigError(
            f"{_explain(first)}{more}",
            location=Location(source, pos[0] if pos else None, pos[1] if pos else None, field_name(loc)),
            hint="fix the recipe; `graft config --explain` lists every key with its documentation",
        ) from None


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a YAML recipe file; `overrides` (dotted keys, e.g. {"teacher.model": "fake"}) win.
    An empty file and a key given twice in one mapping are errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"recipe not found: {path}", hint="pass an existing YAML file, e.g. recipes/cpu-demo.yaml") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read recipe {path}: {e}") from None
    try:
        node = compose(text)
        data = yaml.safe_load(text) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(
            f"YAML syntax error: {getattr(e, 'problem', None) or e}",
            location=Location(str(path), mark.line + 1 if mark else None, mark.column + 1 if mark else None),
        ) from None
    if data is None:
        raise ConfigError("the recipe is empty", location=Location(str(path)),
                          hint="write at least one section (e.g. `teacher: {model: default}`), or start from "
                               "recipes/cpu-demo.yaml")
    dups = duplicate_keys(node)
    if dups:
        key_path, first, second = dups[0]
        raise ConfigError(f"key {key_path[-1]!r} is given twice (lines {first} and {second}); YAML would silently "
                          "keep the last one", location=Location(str(path), second, field=field_name(key_path)),
                          hint=f"keep one of the two: delete line {first} or line {second}")
    if overrides:
        data = apply_overrides(data or {}, overrides)
    return recipe_from_dict(data, source=str(path), positions=positions(node), overrides=overrides)


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `data` with dotted keys set (`train.learning_rate` -> data["train"]["learning_rate"])."""
    import copy

    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def explain(model: type[Section] = Recipe, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, docstring) for every field, recursively: the source of CLI help and docs."""
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        key = f"{prefix}{name}"
        sub = ann if isinstance(ann, type) and issubclass(ann, Section) else None
        if sub is None:  # Optional[Section]
            for arg in getattr(ann, "__args__", ()):
                if isinstance(arg, type) and issubclass(arg, Section):
                    sub = arg
        if sub is not None:
            rows.append((key, "", info.description or ""))
            rows.extend(explain(sub, key + "."))
        else:
            default = info.get_default(call_default_factory=True)
            rows.append((key, repr(default), (info.description or "").replace("\n", " ")))
    return rows
