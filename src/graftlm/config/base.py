"""The base of every config section: frozen, unknown keys rejected, one docstring per field."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _numeric_types(annotation: Any) -> set[type]:
    """The plain number types (`int`, `float`) an annotation accepts, and `bool` if it accepts that."""
    if annotation in (int, float, bool):
        return {annotation}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {a for a in typing.get_args(annotation) if a in (int, float, bool)}
    return set()


class Section(BaseModel):
    """A config section. Each field's docstring (the string literal under it) is its documentation:
    it feeds `graft config --explain`, the CLI help and the README.

    Numbers must be finite (`.inf` and `.nan` are rejected) and `true`/`false` are not numbers."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            accepted = _numeric_types(cls.model_fields[info.field_name].annotation)
            if accepted and bool not in accepted:
                raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value
