"""Placeholders that `graft taxonomy draft` leaves where the teacher could not write a value.

A placeholder is a string that starts with `FILL IN:` followed by what the user should write. It is a
valid string for InstructLab's schema, so `graft taxonomy validate` looks for them itself and reports
each one as an error at its line, with the instruction, until the user replaces it.
"""

from __future__ import annotations

from typing import Any

MARK = "FILL IN:"
"""The first words of every placeholder."""


def placeholder(instruction: str) -> str:
    """The placeholder text telling the user what to write."""
    return f"{MARK} {instruction}"


def find_placeholders(data: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """(field path, instruction) for every placeholder string in a loaded YAML document, in file order."""
    if isinstance(data, str):
        text = data.strip()
        return [(path, text[len(MARK):].strip())] if text.startswith(MARK) else []
    items: Any = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    return [found for key, value in items for found in find_placeholders(value, (*path, key))]
