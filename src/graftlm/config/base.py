"""The base of every config section: frozen, unknown keys rejected, one docstring per field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section. Each field's docstring (the string literal under it) is its documentation:
    it feeds `graft config --explain`, the CLI help and the README."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
    )
