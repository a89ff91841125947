"""`graft config`: show every recipe key with its default and documentation, or check a recipe."""

from __future__ import annotations

import argparse

from graftlm.config import explain, load_recipe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="explain recipe keys, or check and print a recipe")
    p.add_argument("recipe", nargs="?", help="a recipe YAML file to check and print with defaults filled in")
    p.add_argument("--explain", action="store_true", help="list every key with its default and documentation")
    p.set_defaults(func=_config)


def _config(args: argparse.Namespace) -> int:
    if args.recipe:
        import yaml

        from graftlm.redact import strip_credentials

        recipe = load_recipe(args.recipe)
        print(strip_credentials(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)), end="")
        return 0
    for key, default, doc in explain():
        print(f"{key}" + (f" = {default}" if default else ""))
        if doc:
            print(f"    {doc}")
    return 0
