"""`graft run` (the whole pipeline, resumable) and `graft export` (the final model as a HF folder and/or GGUF)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from graftlm.errors import ConfigError


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
    p.add_argument("--out", type=Path, required=True, help="run directory (created; reused to resume)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (stages, leaves, teacher calls and tokens, samples, steps, ETA) and stop")
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
    from graftlm.run import run_pipeline

    out = run_pipeline(args.taxonomy, args.recipe, args.out, dry_run=args.dry_run,
                       overrides=parse_overrides(args.overrides) or None)
    if not args.dry_run:
        report = out / "report"
        html = report / "report.html"
        print(f"run finished: {out}")
        print(f"report: {html if html.is_file() else report}")
        print(f"export the model: graft export {out} --to MODEL_DIR")
    return 0


def _export(args: argparse.Namespace) -> int:
    from graftlm.export.gguf import parse_formats
    from graftlm.run import export_run

    formats = parse_formats(args.formats)
    if "gguf" in formats:
        from graftlm.export.gguf import export_gguf_run

        to = export_gguf_run(args.run_dir, args.to, quant=args.quant, keep_hf="hf" in formats, force=args.force)
    else:
        to = export_run(args.run_dir, args.to, force=args.force)
    print(f"exported {to} (model card: {to / 'README.md'})")
    for gguf in sorted(to.glob("*.gguf")):
        print(f"GGUF: {gguf} ({gguf.stat().st_size / 1e6:.1f} MB); Ollama: "
              f"cd {to} && ollama create {to.name} -f Modelfile")
    return 0
