"""`graft mix` and `graft train`."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from graftlm.cli.common import format_table, recipe_from_args
from graftlm.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix", help="split generated data into phase datasets (knowledge-1, knowledge-2, skills, or stacked)")
    p.add_argument("generate_dir", type=Path, help="output folder of `graft generate` (holds train.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="folder for <phase>.jsonl files and manifest.json")
    p.add_argument("--recipe", help="recipe YAML; its `mix` section is used")
    p.add_argument("--strategy", choices=["phased", "stacked"], help="override mix.strategy")
    p.set_defaults(func=_mix)

    t = sub.add_parser(
        "train", help="mix (when given generated data) and train every phase; rerun to resume",
        description="Train the student on every phase. DATA_DIR is a `graft generate` output (it is mixed into "
                    "OUT/mix first) or a `graft mix` output. Phases go to OUT/<phase>/; under "
                    "`torchrun --nproc-per-node N -m graftlm train ...` the same command trains with FSDP2.")
    t.add_argument("data_dir", type=Path, help="a generate folder (train.jsonl) or a mix folder (manifest with phases)")
    t.add_argument("--recipe", help="recipe YAML (sections mix and train); defaults otherwise")
    t.add_argument("--out", type=Path, required=True, help="output folder")
    t.add_argument("--student", help="override train.student: default, an HF folder or a .gguf file")
    t.add_argument("--strategy", choices=["phased", "stacked"], help="override mix.strategy")
    t.add_argument("--epochs", type=int, help="override train.epochs")
    t.add_argument("--batch-size", type=int, help="override train.batch_size (samples per optimizer step)")
    t.add_argument("--lr", type=float, help="override train.learning_rate")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
    t.add_argument("--select", action="store_true",
                   help="score every checkpoint on the generate folder's held-out items and keep the best "
                        "(needs the evaluation stage); without it the last checkpoint of each phase is kept")
    t.add_argument("-q", "--quiet", action="store_true", help="no per-step log lines (the progress bar stays)")
    t.set_defaults(func=_train)


def _mix(args: argparse.Namespace) -> int:
    from graftlm.artifacts import read_manifest
    from graftlm.mix import run_mix

    recipe = recipe_from_args(args, {"mix.strategy": args.strategy})
    out = run_mix(args.generate_dir, args.out, recipe.mix)
    manifest = read_manifest(out) or {}
    rows = [(p["name"], p["kind"], p["samples"], p["counts"]["own"], p["counts"]["replay"], p["counts"]["extra"])
            for p in manifest.get("phases", [])]
    print(format_table(["phase", "kind", "samples", "own", "replay", "extra"], rows))
    for s in manifest.get("skipped", []):
        print(f"skipped {s['name']}: {s['reason']}")
    print(f"mix written to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from graftlm.artifacts import MANIFEST, read_manifest
    from graftlm.mix import run_mix
    from graftlm.train.run import run_train

    if not args.quiet:
        logging.getLogger("graftlm.train").setLevel(logging.INFO)
    recipe = recipe_from_args(args, {
        "mix.strategy": args.strategy, "train.student": args.student, "train.epochs": args.epochs,
        "train.batch_size": args.batch_size, "train.learning_rate": args.lr, "train.device": args.device,
    })
    data_dir: Path = args.data_dir
    if (data_dir / "train.jsonl").is_file():
        from graftlm.train.distributed import barrier, setup

        dist = setup(recipe.train.device)
        mix_dir = args.out / "mix"
        if dist.main:
            run_mix(data_dir, mix_dir, recipe.mix)
        barrier(dist)
    elif (data_dir / MANIFEST).is_file() and "phases" in (read_manifest(data_dir) or {}):
        mix_dir = data_dir
    else:
        raise InputError(f"{data_dir} is neither a generate folder (train.jsonl) nor a mix folder",
                         hint="pass the output of `graft generate` or `graft mix`")
    scorer = None
    if args.select:
        try:
            from graftlm.evaluate.selection import make_scorer
        except ImportError:
            raise InputError("--select needs the evaluation stage (graftlm.evaluate), which is not installed") from None
        scorer = make_scorer(data_dir, recipe)
    out = run_train(mix_dir, args.out, recipe.train, scorer=scorer)
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()
    manifest = read_manifest(out)
    if manifest and int(os.environ.get("RANK", "0")) == 0:
        rows = []
        for name in manifest["phases"]:
            phase = read_manifest(out / name) or {}
            sel: dict = next((c for c in phase.get("checkpoints", []) if c["path"] == phase.get("selected")), {})
            score = sel.get("score")
            rows.append((name, phase.get("samples", "-"), phase.get("steps", "-"), Path(sel.get("path", "-")).name,
                         "-" if score is None else f"{score:.4f}"))
        print(format_table(["phase", "samples", "steps", "selected", "score"], rows))
        print(f"trained phases: {', '.join(manifest['phases'])}")
        print(f"final model: {manifest['final_model']}")
    return 0
