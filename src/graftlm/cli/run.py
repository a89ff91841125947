"""`graft run` (the whole pipeline, resumable; `--dry-run` prints the plan) and `graft export` (HF folder and/or GGUF)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftlm.cli.common import format_table
from graftlm.errors import ConfigError

if TYPE_CHECKING:
    from graftlm.run import RunPlan


def register(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "run",
        help="run the whole pipeline: validate, generate, mix, train, eval, report (resumable)",
        description="Run validate, generate, mix, train (every phase, with checkpoint selection), eval and "
        "report. Each stage writes its own folder in RUN_DIR with manifest.json last; a rerun resumes at the "
        "first unfinished stage and reruns only the stages whose inputs changed.",
    )
    p.add_argument("taxonomy", type=Path, help="taxonomy root (holding knowledge/ and compositional_skills/)")
    p.add_argument("--recipe", type=Path, required=True, help="recipe YAML, e.g. recipes/cpu-demo.yaml")
    p.add_argument("--out", type=Path, required=True,
                   help="run directory (created; reused to resume; a non-empty folder that is not a run is refused)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (stages, leaves, teacher calls and tokens, samples, steps, ETA), write nothing")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set teacher.model=http://gpu:8000/v1 (repeatable; "
                   "values are YAML)")
    p.set_defaults(func=_run)

    e = sub.add_parser(
        "export", help="write a run's selected model as a Hugging Face folder and/or GGUF, with a model card",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the run's selected final model (LoRA merged) to DIR with a model card README.md.\n"
        "--format gguf writes DIR/DIR.QUANT.gguf (llama.cpp, Ollama, LM Studio) and an Ollama Modelfile\n"
        "(chat template, stop tokens, the system prompt the model was trained with).",
        epilog="examples:\n"
        "  graft export runs/demo --to models/vescary                       # Hugging Face folder\n"
        "  graft export runs/demo --to models/vescary --format gguf         # vescary.f16.gguf + Modelfile\n"
        "  graft export runs/demo --to models/vescary --format hf,gguf --quant q8_0\n"
        "  cd models/vescary && ollama create vescary -f Modelfile && ollama run vescary\n"
        "  llama-server -m models/vescary/vescary.f16.gguf")
    e.add_argument("run_dir", type=Path, help="a run directory made by `graft run`")
    e.add_argument("--to", type=Path, required=True, help="destination folder")
    e.add_argument("--format", dest="formats", default="hf", metavar="FORMATS",
                   help="hf (default), gguf, or both: hf,gguf")
    e.add_argument("--quant", default="f16", choices=["f16", "q8_0"],
                   help="GGUF weights: f16 (default, half precision) or q8_0 (8-bit, about half the size)")
    e.add_argument("--force", action="store_true", help="replace the destination folder if it exists")
    e.set_defaults(func=_export)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` strings (values parsed as YAML) into a dotted-key dict."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not KEY=VALUE", hint="e.g. --set train.epochs=2")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _run(args: argparse.Namespace) -> int:
    from graftlm.run import plan_run, run_pipeline

    overrides = parse_overrides(args.overrides) or None
    if args.dry_run:
        print(format_plan(plan_run(args.taxonomy, args.recipe, args.out, overrides=overrides)))
        return 0
    out = run_pipeline(args.taxonomy, args.recipe, args.out, overrides=overrides)
    report = out / "report"
    html = report / "report.html"
    print(f"run finished: {out}")
    print(f"report: {html if html.is_file() else report}")
    print(f"export the model: graft export {out} --to MODEL_DIR")
    return 0


def _fmt_s(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: RunPlan) -> str:
    """The `graft run --dry-run` text of a `RunPlan`: stages, leaves, teacher calls and tokens, phases, ETA."""
    est = plan.estimate
    lines = ["Stages:"]
    lines.append(format_table(
        ["stage", "status", "estimated time"],
        [(p.name, ("run: " if p.runs else "skip: ") + p.reason, _fmt_s(est.stage_eta_s(p.name)) if p.runs else "-")
         for p in plan.stages]))
    lines += ["", "Leaves (teacher calls and tokens are estimates):"]
    lines.append(format_table(
        ["leaf", "type", "seeds", "chunks", "teacher calls", "prompt tokens", "completion tokens", "samples", "eval items"],
        [(le.name, le.type, le.seeds, le.chunks or "-", le.calls, le.prompt_tokens, le.completion_tokens, le.samples,
          le.eval_items) for le in est.leaves]))
    lines.append(f"total: {est.teacher_calls} teacher calls, {est.tokens} tokens")
    lines += _coverage_plan(est.leaves)
    lines += ["", f"Training phases (samples from the {est.samples_source}):"]
    lines.append(format_table(["phase", "samples", "optimizer steps", "tokens per epoch"],
                              [(n, s, st, tok) for n, s, st, tok in est.phases]))
    lines += ["", f"ETA: {_fmt_s(plan.eta_s)} ({est.speed_note})"]
    return "\n".join(lines)


def _coverage_plan(leaves: list[Any]) -> list[str]:
    """Estimated facts and views per knowledge leaf with facts (`generate.facts` not `off`)."""
    from graftlm.generate.coverage import WORDS_PER_FACT

    rows = [(le.name, le.coverage.facts, le.coverage.views, f"{le.coverage.views_per_fact:.1f}",
             "the counted sentences" if le.coverage.basis == "sentences"
             else f"estimated from words (one per {WORDS_PER_FACT} words)")
            for le in leaves if le.coverage is not None]
    if not rows:
        return []
    return ["", "Knowledge facts and views (ESTIMATES, before any teacher call; views before dedup and split):",
            format_table(["leaf", "facts", "views", "views per fact", "facts are"], rows)]


def _export(args: argparse.Namespace) -> int:
    from graftlm.export import EXPORTERS, parse_formats

    formats = parse_formats(args.formats)
    if "gguf" in formats:
        to = EXPORTERS["gguf"](args.run_dir, args.to, quant=args.quant, keep_hf="hf" in formats, force=args.force)
    else:
        to = EXPORTERS["hf"](args.run_dir, args.to, force=args.force)
    print(f"exported {to} (model card: {to / 'README.md'})")
    for gguf in sorted(to.glob("*.gguf")):
        print(f"GGUF: {gguf} ({gguf.stat().st_size / 1e6:.1f} MB); Ollama: "
              f"cd {to} && ollama create {to.name} -f Modelfile")
    return 0
