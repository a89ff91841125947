"""The model card (README.md) of an exported model: base model, taxonomy leaves, data counts, checkpoint
selection, the evaluation table and the fact coverage table (the same tables as the run's report,
`report.eval_table` and `report.coverage_table`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graftlm.artifacts import read_json, read_manifest, stable_json

FRONT_MATTER = "---\nlibrary_name: transformers\ntags: [graftlm, lab, instructlab-taxonomy]\n---\n"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def model_card(run_dir: Path, model_dir: Path) -> str:
    """README.md of an exported model: base model, taxonomy leaves, data counts, evaluation table."""
    from graftlm.report import Block, coverage_table, eval_table, render_markdown

    run_dir = Path(run_dir)
    gen = read_manifest(run_dir / "generate") or {}
    mix = read_manifest(run_dir / "mix") or {}
    train = read_manifest(run_dir / "train") or {}
    scores_path = run_dir / "eval" / "scores.json"
    scores = read_json(scores_path) if scores_path.is_file() else None
    base = str(train.get("base_model") or "unknown")
    blocks = [Block("h1", run_dir.resolve().name),
              Block("p", f"Fine-tuned from `{base}` by graftlm with the LAB method "
                         "(taxonomy -> synthetic data -> multi-phase training with replay -> evaluation)."),
              Block("h2", "Taxonomy leaves")]
    leaves = gen.get("leaves") or {}
    if leaves:
        blocks.append(Block("table", rows=[["leaf", "type", "generated", "kept", "eval items"]] + [
            [name, *(str(v.get(k, "-")) for k in ("type", "generated", "kept", "eval_items"))]
            for name, v in leaves.items()]))
    else:
        blocks.append(Block("p", "(no generate manifest found)"))
    teacher = gen.get("teacher")
    if teacher:
        blocks.append(Block("p", f"Teacher: `{teacher if isinstance(teacher, str) else stable_json(teacher)}`"))
    blocks.append(Block("h2", "Training data"))
    phases = mix.get("phases") or []
    if phases:
        blocks.append(Block("table", rows=[["phase", "kind", "samples"]] + [
            [str(p.get(k)) for k in ("name", "kind", "samples")] for p in phases]))
        blocks.append(Block("p", f"Strategy: {mix.get('strategy', '-')}."))
    else:
        blocks.append(Block("p", "(no mix manifest found)"))
    sel_rows = []
    for name in train.get("phases") or []:
        pm = read_manifest(run_dir / "train" / str(name)) or {}
        selected = str(pm.get("selected") or "")
        chosen: dict[str, Any] = next((c for c in pm.get("checkpoints") or [] if str(c.get("path")) == selected), {})
        sel_rows.append([str(name), str(len(pm.get("checkpoints") or [])), Path(selected).name or "-",
                         str(chosen.get("step", "-")), _num(chosen.get("score"))])
    if sel_rows:
        blocks += [Block("h2", "Checkpoint selection"),
                   Block("table", rows=[["phase", "checkpoints", "selected", "step", "score"], *sel_rows])]
    blocks.append(Block("h2", "Evaluation (base vs trained)"))
    rows = eval_table(scores) if isinstance(scores, dict) else []
    blocks.append(Block("table", rows=rows) if len(rows) > 1 else Block("p", "(no evaluation found)"))
    coverage = coverage_table(gen, scores if isinstance(scores, dict) else None)
    if len(coverage) > 1:
        blocks += [Block("h2", "Fact coverage (training views per fact)"), Block("table", rows=coverage)]
    blocks.append(Block("p", f"Exported from `{model_dir}`."))
    return FRONT_MATTER + "\n" + render_markdown(blocks)
