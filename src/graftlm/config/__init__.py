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
from graftlm.yamlpos import field_name, load_with_positions, lookup

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
    return str(err.get("msg", "invalid value"))


def recipe_from_dict(data: Any, *, source: str = "<recipe>", positions: dict | None = None) -> Recipe:
    """Validate a mapping into a Recipe; errors carry file, line and field."""
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
        pos = lookup(positions or {}, (*loc, "<key>")) or lookup(positions or {}, loc)
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(
            f"{_explain(first)}{more}",
            location=Location(source, pos[0] if pos else None, pos[1] if pos else None, field_name(loc)),
            hint="fix the recipe; `graft config --explain` lists every key with its documentation",
        ) from None


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a YAML recipe file; `overrides` (dotted keys, e.g. {"teacher.model": "fake"}) win."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"recipe not found: {path}", hint="pass an existing YAML file, e.g. recipes/cpu-demo.yaml") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read recipe {path}: {e}") from None
    try:
        data, pos = load_with_positions(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(
            f"YAML syntax error: {getattr(e, 'problem', None) or e}",
            location=Location(str(path), mark.line + 1 if mark else None, mark.column + 1 if mark else None),
        ) from None
    if overrides:
        data = apply_overrides(data or {}, overrides)
    return recipe_from_dict(data, source=str(path), positions=pos)


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
