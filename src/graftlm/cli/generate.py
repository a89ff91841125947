"""`graft generate`: synthetic training and eval data for a taxonomy's leaves."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from graftlm.cli.common import format_table, recipe_from_args


def _doc(field: str) -> str:
    from graftlm.config import GenerateConfig

    info = GenerateConfig.model_fields[field]
    return (info.description or "").split(". ")[0].rstrip(".")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate synthetic training data from a taxonomy with a teacher model",
                       description="Generate synthetic data by the LAB method: per leaf, only that leaf's seeds "
                                   "go into its prompts. Rerun the same command to resume after a crash.")
    p.add_argument("taxonomy", type=Path, help="taxonomy root folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (train.jsonl, eval.jsonl, manifest.json, ...)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--base", default=None,
                     help="only leaves changed against this git ref (`empty` = every leaf); default: every leaf")
    sel.add_argument("--leaf", action="append", metavar="NAME",
                     help="only this leaf (`a->b->c`, its file-safe form or folder path); repeatable")
    p.add_argument("--teacher", metavar="SPEC",
                   help="`default` (embedded SmolLM2-135M), a model folder or .gguf, `fake`, or "
                        "http(s)://host:port/v1 URLs, comma separated")
    p.add_argument("--judge", metavar="SPEC", help="the judge, same forms as --teacher (default: the teacher)")
    p.add_argument("--samples-per-leaf", type=int, metavar="N", help=_doc("samples_per_leaf"))
    p.add_argument("--recipe", metavar="R.yaml", help="a recipe file; its `teacher`, `judge` and `generate` sections apply")
    p.add_argument("--preview", action="store_true",
                   help="one leaf, a handful of samples printed with their scores, no output files but the call cache")
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from graftlm.errors import ConfigError

    overrides: dict[str, Any] = {"teacher.model": args.teacher, "judge.model": args.judge,
                                 "generate.samples_per_leaf": args.samples_per_leaf}
    if args.samples_per_leaf is not None and args.samples_per_leaf < 1:
        raise ConfigError("--samples-per-leaf must be at least 1", hint="e.g. --samples-per-leaf 30")
    recipe = recipe_from_args(args, overrides)
    leaves = None
    if args.leaf:
        from graftlm.taxonomy.load import select_leaves

        leaves = select_leaves(args.taxonomy, names=args.leaf)
    if args.preview:
        return _preview(args, recipe, leaves)

    from graftlm.artifacts import read_manifest
    from graftlm.generate.accounting import TABLE_HEADERS
    from graftlm.generate.run import run_generate

    out = run_generate(args.taxonomy, args.out, recipe, leaves=leaves, base=args.base)
    manifest = read_manifest(out) or {}
    rows = []
    for name, leaf in manifest.get("leaves", {}).items():
        rejected = sum(sum(r.values()) for r in leaf.get("rejected", {}).values())
        stages = ", ".join(f"{s} {sum(r.values())}" for s, r in leaf.get("rejected", {}).items())
        rows.append((name, leaf["type"], leaf["generated"], f"{rejected}" + (f" ({stages})" if stages else ""),
                     leaf["duplicates"], leaf["eval_items"], leaf["kept"]))
    print(format_table(TABLE_HEADERS, rows))
    _print_coverage(manifest)
    counts = manifest.get("counts", {})
    calls = manifest.get("calls", {}).get("teacher", {})
    print(f"\n{counts.get('train', 0)} training samples, {counts.get('eval', 0)} eval items, "
          f"{counts.get('rejects', 0)} rejects in {out}", file=sys.stderr)
    if calls:
        print(f"teacher: {calls.get('requests', 0)} requests ({calls.get('cached', 0)} from the cache, "
              f"{calls.get('failures', 0)} failed), {calls.get('requests_per_s', 0)} req/s, "
              f"utilisation {100 * calls.get('utilisation', 0):.0f}%", file=sys.stderr)
    if manifest.get("warnings"):  # each was logged as it happened
        print(f"{len(manifest['warnings'])} leaf warning(s): see above, or `warnings` in {out}/manifest.json",
              file=sys.stderr)
    return 0


def _print_coverage(manifest: dict[str, Any]) -> None:
    """Per knowledge leaf with facts: facts, views per fact, under target, and the facts without a view."""
    from graftlm.generate.coverage import COVERAGE_HEADERS, coverage_row, uncovered_text

    covered = {name: leaf["coverage"] for name, leaf in manifest.get("leaves", {}).items() if leaf.get("coverage")}
    if not covered:
        return
    print("\nFact coverage (training samples kept per fact of the training chunks):")
    print(format_table(COVERAGE_HEADERS, [coverage_row(name, cov) for name, cov in covered.items()]))
    for name, cov in covered.items():
        if (line := uncovered_text(name, cov)) is not None:
            print(line)


def _preview(args: argparse.Namespace, recipe: Any, leaves: Any) -> int:
    from graftlm.generate.run import preview_generate

    results = preview_generate(args.taxonomy, args.out, recipe, leaves=leaves, base=args.base)
    samples = [r for r in results if r["kind"] == "sample"]
    rejects = [r for r in results if r["kind"] == "reject"]
    leaf = (samples or rejects or [{}])[0].get("metadata", {}).get("leaf") or (rejects[0]["leaf"] if rejects else "?")
    print(f"preview of leaf {leaf}: {len(samples)} samples kept, {len(rejects)} rejected\n")
    for s in samples:
        meta = s["metadata"]
        scores = {k: v for k, v in (meta.get("scores") or {}).items() if not k.endswith("explanation")}
        print(f"--- {meta['task']} (scores: {json.dumps(scores)})")
        print("USER: " + textwrap.shorten(s["messages"][1]["content"], 400))
        print("ASSISTANT: " + textwrap.shorten(s["messages"][2]["content"], 400) + "\n")
    for r in rejects[:10]:
        print(f"rejected at {r['stage']}: {r['reason']}: {textwrap.shorten(str(r.get('text', '')), 160)}")
    return 0
