"""Small helpers shared by command modules: recipe + overrides, output of tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from graftlm.config import Recipe, load_recipe, recipe_from_dict


def recipe_from_args(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Recipe:
    """The recipe named by `--recipe` (or all defaults), with CLI overrides that are not None."""
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    path = getattr(args, "recipe", None)
    if path:
        return load_recipe(path, clean)
    from graftlm.config import apply_overrides

    return recipe_from_dict(apply_overrides({}, clean), source="<command line>", overrides=clean)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
