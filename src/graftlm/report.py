"""`graft report`: report.md and one self-contained report.html for a run folder.

Reads whatever the run has produced (each part may be missing, and the report says so):
`generate/manifest.json` (the generation funnel per leaf), `train/<phase>/metrics.jsonl` (loss and learning
rate), `train/<phase>/manifest.json` (checkpoint scores and the selected one) and `eval/scores.json`
(per-leaf before/after with intervals). Its first section answers "did my model learn my data?" per leaf
in plain words. Plots are drawn with matplotlib and inlined into the HTML as base64 PNGs; the same PNGs
are written beside report.md.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.artifacts import (
    MANIFEST,
    atomic_write_text,
    read_json,
    read_jsonl,
    read_manifest,
    write_manifest,
)

ANSWER_WORDS = {"yes": "Yes, learned", "worse": "Got worse", "not significant": "Not significant",
                "no base model": "No base to compare", "not evaluated": "Not evaluated", "no data": "No data"}


# -- the content model: blocks rendered as Markdown and as HTML -----------------------------------------

@dataclass
class Block:
    kind: str  # "h1" | "h2" | "p" | "note" | "table" | "img" | "list"
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    png: bytes = b""
    name: str = ""
    css: str = ""


def run_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write `report.md`, `report.html` and the plot PNGs into `out` (default `run_dir/report`)."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    inputs = load_inputs(run_dir)
    blocks = build_blocks(run_dir, inputs)
    for b in blocks:
        if b.kind == "img":
            (out / b.name).write_bytes(b.png)
    atomic_write_text(out / "report.md", render_markdown(blocks))
    atomic_write_text(out / "report.html", render_html(blocks, title=f"graftlm report: {run_dir.resolve().name}"))
    write_manifest(out, {"stage": "report", "run_dir": str(run_dir), "inputs": {k: v is not None for k, v in inputs.items()},
                         "plots": [b.name for b in blocks if b.kind == "img"], "created": time.time()})
    return out


def load_inputs(run_dir: Path) -> dict[str, Any]:
    """Every input that exists, None for the missing ones. A corrupt file counts as missing."""
    def safe_json(path: Path) -> Any:
        try:
            return read_json(path) if path.is_file() else None
        except (OSError, json.JSONDecodeError):
            return None

    phases: dict[str, dict[str, Any]] = {}
    train_dir = run_dir / "train"
    if train_dir.is_dir():
        order = (read_manifest(train_dir) or {}).get("phases") or []
        names = [n for n in order if (train_dir / n).is_dir()]
        names += sorted(p.name for p in train_dir.iterdir() if p.is_dir() and p.name not in names
                        and ((p / "metrics.jsonl").is_file() or (p / MANIFEST).is_file()))
        for name in names:
            metrics: list[dict[str, Any]] = []
            mpath = train_dir / name / "metrics.jsonl"
            if mpath.is_file():
                try:
                    metrics = [m for m in read_jsonl(mpath) if isinstance(m, dict)]
                except Exception:  # noqa: BLE001 - a broken metrics file is reported as missing
                    metrics = []
            phases[name] = {"metrics": metrics, "manifest": read_manifest(train_dir / name)}
    return {
        "generate": read_manifest(run_dir / "generate"),
        "train": phases or None,
        "train_manifest": read_manifest(train_dir) if train_dir.is_dir() else None,
        "scores": safe_json(run_dir / "eval" / "scores.json"),
        "answers": _safe_jsonl(run_dir / "eval" / "answers.jsonl"),
    }


def _safe_jsonl(path: Path) -> list[dict[str, Any]] | None:
    if not path.is_file():
        return None
    try:
        return [r for r in read_jsonl(path) if isinstance(r, dict)]
    except Exception:  # noqa: BLE001 - a broken answers file only loses the examples section
        return None


def build_blocks(run_dir: Path, inputs: dict[str, Any]) -> list[Block]:
    blocks = [Block("h1", f"graftlm report: {run_dir.resolve().name}")]
    scores = inputs["scores"]
    blocks += learned_section(scores)
    blocks += eval_section(scores)
    blocks += coverage_section(inputs["generate"], scores)
    blocks += examples_section(inputs["answers"])
    blocks += training_section(inputs["train"], inputs["train_manifest"])
    blocks += funnel_section(inputs["generate"])
    blocks.append(Block("note", f"Written by `graft report {run_dir}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."))
    return blocks


# -- sections -------------------------------------------------------------------------------------------

def learned_section(scores: dict[str, Any] | None) -> list[Block]:
    out = [Block("h2", "Did the model learn your data?")]
    if not scores:
        out.append(Block("note", "No evaluation found (eval/scores.json is missing): the model has not been "
                                 "evaluated yet. Run `graft eval MODEL --data RUN/generate --base BASE --out RUN/eval`."))
        return out
    leaves = scores.get("leaves") or {}
    exam = (scores.get("exam") or {}).get("leaves") or {}
    if not leaves and not exam:
        out.append(Block("note", "The evaluation holds no leaves (no held-out items were generated)."))
    for line in knowledge_headline(scores):
        out.append(Block("p", line))
    items = []
    for prefix, group in (("", leaves), ("exam: ", exam)):
        for leaf, block in group.items():
            v = block.get("verdict") or {}
            items.append(f"**{prefix}{leaf}** ({block.get('type', '?')}): {v.get('text', 'no verdict')}")
    if items:
        out.append(Block("list", rows=[[i] for i in items]))
        out.append(Block("p", "\"Yes\" and \"got worse\" mean the paired test of trained against base gave p < 0.05 on "
                              "the same questions after Holm's correction across every leaf and metric of this "
                              "report; \"not significant\" means p >= 0.05: with this many questions the difference "
                              "could be noise. Knowledge is decided by fact recall: the share of the reference's key "
                              "facts (numbers with units, dates, names, quoted terms, or the exam's keywords) that "
                              "the answer states."))
    ret = scores.get("retention") or {}
    mt = ret.get("mt_bench")
    if mt and mt.get("withheld"):
        out.append(Block("p", f"General ability (MT-Bench, {mt.get('questions')} questions): no verdict, because "
                              f"{mt['withheld']}."))
    elif mt and mt.get("diff"):
        out.append(Block("p", f"General ability (MT-Bench, {mt.get('questions')} questions): "
                              f"{_fmt(mt['base']['mean'])} -> {_fmt(mt['trained']['mean'])}, "
                              f"{_verdict_words(mt['diff'])}."))
    drift = ret.get("drift")
    if drift:
        kl = drift["kl"]["trained"]
        ppl = drift["nll"].get("perplexity") or {}
        out.append(Block("p", f"Drift on built-in general texts: KL(base || trained) = {_fmt(kl['mean'], 4)} nats "
                              f"per token (95% CI {_ci(kl)}); perplexity {_fmt(ppl.get('base'))} -> "
                              f"{_fmt(ppl.get('trained'))}: {_verdict_words(drift['nll'].get('diff') or {})}."))
    je = scores.get("judge_errors") or {}
    if je.get("unparsable"):
        out.append(Block("note", f"The judge (`{scores.get('judge')}`) wrote no parsable rating in {je['unparsable']} of "
                                 f"{je['judgments']} judgments ({je['rate']:.0%}). These are left out of the means, "
                                 "never counted as zeros; knowledge leaves are decided by fact recall, "
                                 "which needs no judge. A stronger judge (`graft eval --judge URL`) gives judged scores "
                                 "you can trust."))
    out += judge_trust_notes(scores)
    for note in scores.get("skipped") or []:
        out.append(Block("note", f"Skipped: {note}"))
    return out


def judge_trust_notes(scores: dict[str, Any]) -> list[Block]:
    """The judge's measured accuracy, and the leaves whose held-out items may share text with training."""
    out = []
    acc = scores.get("judge_accuracy") or {}
    if acc.get("items"):
        how = " and ".join(acc.get("methods") or []) or "text"
        verdict = ("reliable" if acc.get("reliable") else
                   f"unreliable (below {acc.get('threshold', 0.7):.0%}): its verdicts decide nothing here")
        out.append(Block("note", f"Judge accuracy: `{scores.get('judge')}` judged {acc['right']} of {acc['items']} "
                                 f"labelled answers right ({acc['accuracy']:.0%}, verdicts read from {how}; true "
                                 f"sentences of your documents against copies with a swapped number or name): "
                                 f"{verdict}."))
    elif acc:
        out.append(Block("note", "Judge accuracy: not measured (the texts gave no sentence with a number or name "
                                 "to swap)."))
    for leaf, note in (scores.get("leakage") or {}).items():
        out.append(Block("note", f"Held-out items of {leaf} may share text with the training data: {note}."))
    return out


def eval_section(scores: dict[str, Any] | None) -> list[Block]:
    if not scores:
        return []
    out = [Block("h2", "Evaluation per leaf")]
    models = scores.get("models") or {}
    out.append(Block("p", "Trained model: `{}`; base model: `{}`; judge: `{}`.".format(
        models.get("trained", "?"), models.get("base", "none"), scores.get("judge") or "none")))
    rows = eval_table(scores)
    if len(rows) > 1:
        out.append(Block("table", rows=rows))
        out.append(Block("p", STATS_NOTE))
    png = plot_leaves(scores)
    if png:
        out.append(Block("img", "Per-leaf scores before and after training, with 95% bootstrap intervals",
                         png=png, name="eval_leaves.png"))
    return out


EVAL_TABLE_HEADER = ["leaf", "metric", "n", "base (95% CI)", "trained (95% CI)", "difference (95% CI)", "p",
                     "judge errors", "verdict"]
STATS_NOTE = ("n: items scored for both models, with the number of source clusters (document chunk or seed) in "
              "brackets when items share sources; intervals resample whole clusters. The interval of a difference "
              "inverts the paired sign-flip test, so it holds 0 exactly when p >= 0.05; p and verdicts are "
              "Holm-corrected across every leaf and metric of this report. Rows `open book` show the base model "
              "answering with the source passage in its prompt, and the share of that gap the trained model "
              "closed: (trained - base) / (open book - base).")


def eval_table(scores: dict[str, Any]) -> list[list[str]]:
    """`eval/scores.json` as one table: the header, then a row per leaf and metric (with the open-book bound
    and the share of the gap closed), the exam's leaves, and a row per retention measure. The report and
    the exported model card both show this table."""
    rows = [list(EVAL_TABLE_HEADER)]
    exam = scores.get("exam") or {}
    for prefix, leaves in (("", scores.get("leaves") or {}), ("exam: ", exam.get("leaves") or {})):
        for leaf, block in leaves.items():
            for metric, e in (block.get("evaluators") or {}).items():
                rows.append(_metric_row(prefix + leaf, metric, e))
                if e.get("gap_closed"):
                    rows.append(_gap_row(prefix + leaf, metric, e))
    for name, e in (scores.get("retention") or {}).items():
        if name == "mt_bench":
            rows.append(_metric_row("retention: MT-Bench", "judge_score", e))
        elif name == "drift":
            rows.append(_metric_row("retention: drift", "nll per token (lower is better)", e["nll"]))
            rows.append(_metric_row("retention: drift", "KL(base || trained)", e["kl"]))
    return rows


COVERAGE_NOTE = ("Views: the training samples kept for a fact (Q&A both ways, paraphrases, relation passages and "
                 "rewrites that state it), counted over the facts of the training chunks; facts of held-out chunks "
                 "are never trained on, and a near-duplicate fact's views count for the fact it repeats. A model "
                 "recalls a fact reliably only after seeing it in several renderings, so facts under the target "
                 "and facts without any view are where to add text or raise `generate.views`.")


def coverage_table(gen: dict[str, Any] | None, scores: dict[str, Any] | None) -> list[list[str]]:
    """Fact coverage per knowledge leaf (`coverage` of the generate manifest) beside the leaf's fact recall,
    base -> trained: the header, then a row per leaf with facts. The report and the model card show it."""
    from graftlm.generate.coverage import COVERAGE_HEADERS, coverage_row

    rows = [[*COVERAGE_HEADERS, "views by kind", "fact recall (base -> trained)"]]
    evaluated = (scores or {}).get("leaves") or {}
    for leaf, v in ((gen or {}).get("leaves") or {}).items():
        cov = v.get("coverage")
        if not cov:
            continue
        recall = ((evaluated.get(leaf) or {}).get("evaluators") or {}).get("fact_recall") or {}
        by_view = ", ".join(f"{k}: {n}" for k, n in (cov.get("by_view") or {}).items()) or "-"
        shown = (f"{_fmt((recall.get('base') or {}).get('mean'))} -> {_fmt((recall.get('trained') or {}).get('mean'))}"
                 if recall else "not evaluated")
        rows.append([*coverage_row(leaf, cov), by_view, shown])
    return rows


def coverage_section(gen: dict[str, Any] | None, scores: dict[str, Any] | None) -> list[Block]:
    """Per knowledge leaf: facts, views kept per fact, under target, and the facts without a view by name."""
    rows = coverage_table(gen, scores)
    if len(rows) == 1:
        return []
    out = [Block("h2", "Fact coverage of knowledge leaves"), Block("table", rows=rows), Block("p", COVERAGE_NOTE)]
    for leaf, v in ((gen or {}).get("leaves") or {}).items():
        uncovered = (v.get("coverage") or {}).get("uncovered") or []
        if uncovered:
            out.append(Block("p", f"Facts of **{leaf}** without a kept training view ({len(uncovered)}):"))
            out.append(Block("list", rows=[[str(text)] for text in uncovered]))
    return out


def knowledge_headline(scores: dict[str, Any]) -> list[str]:
    """The headline knowledge numbers: the share of the open-book gap closed (fact recall), over all
    held-out knowledge items and over the exam, when measured."""
    lines = []
    exam = scores.get("exam") or {}
    for name, overall in (("held-out knowledge questions", (scores.get("overall") or {}).get("knowledge") or {}),
                          ("your exam", exam.get("overall") or {})):
        g = (overall.get("fact_recall") or {}).get("gap_closed")
        if not g:
            continue
        where = (f"fact recall closed-book base {_fmt(g['base'])}, trained {_fmt(g['trained'])}, open-book base "
                 f"{_fmt(g['open_book'])}; n = {g['n']} in {g['clusters']} source clusters")
        if g.get("share") is None:
            lines.append(f"**Share of the open-book gap closed** on {name}: n/a, {g.get('note')} ({where}).")
        else:
            lines.append(f"**Share of the open-book gap closed** on {name}: **{_pct(g['share'])}** "
                         f"(95% CI {_pct((g.get('ci') or [None])[0])} to {_pct((g.get('ci') or [None, None])[1])}; "
                         f"{where}).")
    return lines


def examples_section(answers: list[dict[str, Any]] | None, per_leaf: int = 3) -> list[Block]:
    """A few held-out questions per leaf with both answers: those the trained model improved most on."""
    rows = [r for r in answers or [] if r.get("evaluator") in ("knowledge_qa", "skill_judged")]
    if not rows:
        return []
    out = [Block("h2", "Example answers"),
               Block("p", f"Per leaf, the {per_leaf} held-out questions where the trained model gained most over the base "
                          "model (fact recall for knowledge, judge rating for skills).")]
    by_leaf: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_leaf.setdefault(str(r.get("leaf")), []).append(r)
    table = [["leaf", "question", "reference", "base answer", "trained answer"]]
    for leaf, group in by_leaf.items():
        for r in sorted(group, key=_gain, reverse=True)[:per_leaf]:
            ans = r.get("answers") or {}
            table.append([_short(leaf), _clip(r.get("question")), _clip(r.get("reference")),
                          _clip(ans.get("base", "-")) + _judged(r, "base"),
                          _clip(ans.get("trained", "-")) + _judged(r, "trained")])
    out.append(Block("table", rows=table))
    return out


def _gain(r: dict[str, Any]) -> float:
    def value(role: str) -> float:
        m = (r.get("metrics") or {}).get(role) or {}
        for metric in ("fact_recall", "token_f1"):  # token F1 in evaluations written before fact recall
            if metric in m:
                return float(m[metric])
        j = (r.get("judgments") or {}).get(role) or {}
        return float(j.get("score") or 0) / 10
    return value("trained") - value("base")


def _judged(r: dict[str, Any], role: str) -> str:
    j = (r.get("judgments") or {}).get(role) or {}
    return f" [judge: {j['score']:g}]" if isinstance(j.get("score"), (int, float)) else ""


def _clip(text: Any, width: int = 220) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= width else t[: width - 3] + "..."


def training_section(phases: dict[str, dict[str, Any]] | None, manifest: dict[str, Any] | None) -> list[Block]:
    out = [Block("h2", "Training")]
    if not phases:
        out.append(Block("note", "No training metrics found (train/<phase>/metrics.jsonl is missing): training has "
                                 "not run yet, or ran elsewhere."))
        return out
    if manifest:
        out.append(Block("p", f"Base model `{manifest.get('base_model', '?')}`; final model `{manifest.get('final_model', '?')}`."))
    rows = [["phase", "steps", "samples seen", "first loss", "last loss", "peak lr", "checkpoints", "selected"]]
    for name, ph in phases.items():
        m = [x for x in ph["metrics"] if isinstance(x.get("loss"), (int, float))]
        man = ph["manifest"] or {}
        cks = man.get("checkpoints") or []
        sel = man.get("selected")
        rows.append([name, str(m[-1].get("step", len(m))) if m else "-", str(m[-1].get("samples_seen", "-")) if m else "-",
                     _fmt(m[0]["loss"], 4) if m else "-", _fmt(m[-1]["loss"], 4) if m else "-",
                     f"{max((x.get('lr') or 0) for x in m):.3g}" if m else "-", str(len(cks)),
                     Path(sel).name if sel else ("(phase unfinished)" if not man else "-")])
    out.append(Block("table", rows=rows))
    missing = [n for n, ph in phases.items() if not ph["metrics"]]
    if missing:
        out.append(Block("note", f"No metrics.jsonl for phase(s) {', '.join(missing)}."))
    png = plot_training(phases)
    if png:
        out.append(Block("img", "Training loss and learning rate per phase", png=png, name="training.png"))
    png = plot_checkpoints(phases)
    if png:
        out.append(Block("img", "Checkpoint scores per phase (the selected checkpoint is marked)", png=png,
                         name="checkpoints.png"))
    else:
        out.append(Block("note", "No checkpoint scores: checkpoint selection did not run (the last checkpoint of "
                                 "each phase was kept), or no phase has finished."))
    return out


def funnel_section(gen: dict[str, Any] | None) -> list[Block]:
    out = [Block("h2", "Synthetic data per leaf")]
    if not gen:
        out.append(Block("note", "No generation manifest found (generate/manifest.json is missing): data generation "
                                 "has not finished."))
        return out
    out.append(Block("p", f"Teacher `{gen.get('teacher', '?')}`, taxonomy commit `{str(gen.get('taxonomy_commit', '?'))[:12]}`."))
    rows = [["leaf", "type", "generated", "rejected (by stage)", "duplicates", "kept", "eval items"]]
    for leaf, v in (gen.get("leaves") or {}).items():
        rej = _rejected_by_stage(v)
        rows.append([leaf, str(v.get("type", "-")), str(v.get("generated", "-")),
                     ", ".join(f"{k}: {n}" for k, n in rej.items()) or "0", str(v.get("duplicates", "-")),
                     str(v.get("kept", "-")), str(v.get("eval_items", "-"))])
    out.append(Block("table", rows=rows))
    empty = [leaf for leaf, v in (gen.get("leaves") or {}).items() if not v.get("kept")]
    if empty:
        out.append(Block("note", f"No training data kept for: {', '.join(empty)}. See generate/rejects.jsonl for reasons."))
    png = plot_funnel(gen)
    if png:
        out.append(Block("img", "Generation funnel per leaf: kept, duplicates and rejects by stage", png=png,
                         name="funnel.png"))
    return out


# -- plots (matplotlib, Agg backend) ---------------------------------------------------------------------

def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _has_data(entry: dict[str, Any]) -> bool:
    return any(isinstance(entry.get(r), dict) and entry[r].get("mean") is not None for r in ("base", "trained"))


def _leaf_panels(leaf: str, block: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(title, subtitle, metric, entry) of a leaf: its deciding metric, plus multiple choice for knowledge."""
    evals = block.get("evaluators") or {}
    verdict = block.get("verdict") or {}
    primary = str(verdict.get("metric") or "")
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    if primary in evals and _has_data(evals[primary]):
        out.append((_short(leaf), ANSWER_WORDS.get(verdict.get("answer", ""), ""), primary, evals[primary]))
    mc = evals.get("multiple_choice")
    if primary != "multiple_choice" and mc and _has_data(mc):
        out.append((_short(leaf), f"multiple choice: {(mc.get('diff') or {}).get('verdict', '')}", "multiple_choice", mc))
    return out


def plot_leaves(scores: dict[str, Any]) -> bytes | None:
    panels = []
    for leaf, block in (scores.get("leaves") or {}).items():
        panels += _leaf_panels(leaf, block)
    mt = (scores.get("retention") or {}).get("mt_bench")
    if mt and _has_data(mt):
        panels.append(("MT-Bench (retention)", (mt.get("diff") or {}).get("verdict", ""), "judge_score", mt))
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig = _figure(4.2 * cols, 3.4 * nrows)
    colors = {"base": "#9aa5b1", "trained": "#2f7ed8"}
    for i, (title, subtitle, metric, e) in enumerate(panels, start=1):
        ax = fig.add_subplot(nrows, cols, i)
        roles = [r for r in ("base", "trained") if isinstance(e.get(r), dict) and e[r].get("mean") is not None]
        means = [e[r]["mean"] for r in roles]
        lows = [e[r]["mean"] - (e[r].get("ci") or [e[r]["mean"]] * 2)[0] for r in roles]
        highs = [(e[r].get("ci") or [e[r]["mean"]] * 2)[1] - e[r]["mean"] for r in roles]
        bars = ax.bar(roles, means, yerr=[lows, highs], capsize=6, color=[colors[r] for r in roles])
        ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], label_type="center", fontsize=8, color="white")
        scale = e.get("scale")
        if scale:
            ax.set_ylim(0 if scale[0] <= 1 else scale[0], scale[1])
        ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
        ax.set_ylabel(metric, fontsize=8)
        ax.tick_params(labelsize=8)
    return _png(fig)


def plot_training(phases: dict[str, dict[str, Any]]) -> bytes | None:
    shown = [(n, ph) for n, ph in phases.items() if any(isinstance(m.get("loss"), (int, float)) for m in ph["metrics"])]
    if not shown:
        return None
    fig = _figure(4.4 * len(shown), 3.4)
    for i, (name, ph) in enumerate(shown, start=1):
        ax = fig.add_subplot(1, len(shown), i)
        m = [x for x in ph["metrics"] if isinstance(x.get("loss"), (int, float))]
        steps = [x.get("step", j) for j, x in enumerate(m)]
        ax.plot(steps, [x["loss"] for x in m], color="#2f7ed8", label="loss")
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel("loss", color="#2f7ed8", fontsize=8)
        ax.set_title(name, fontsize=9)
        lr = [x.get("lr") for x in m]
        if all(isinstance(v, (int, float)) for v in lr):
            ax2 = ax.twinx()
            ax2.plot(steps, lr, color="#e8743b", linestyle="--", label="lr")
            ax2.set_ylabel("learning rate", color="#e8743b", fontsize=8)
            ax2.tick_params(labelsize=7)
        ax.tick_params(labelsize=7)
    return _png(fig)


def plot_checkpoints(phases: dict[str, dict[str, Any]]) -> bytes | None:
    shown = []
    for name, ph in phases.items():
        man = ph["manifest"] or {}
        cks = [c for c in man.get("checkpoints") or [] if isinstance(c.get("score"), (int, float))]
        if cks:
            shown.append((name, cks, man.get("selected")))
    if not shown:
        return None
    fig = _figure(4.4 * len(shown), 3.2)
    for i, (name, cks, selected) in enumerate(shown, start=1):
        ax = fig.add_subplot(1, len(shown), i)
        xs = [c.get("step", j) for j, c in enumerate(cks)]
        ys = [c["score"] for c in cks]
        ax.plot(xs, ys, marker="o", color="#2f7ed8")
        ax.margins(y=0.25)
        for c, x, y in zip(cks, xs, ys, strict=True):
            if selected and _same_path(c.get("path"), selected):
                ax.plot([x], [y], marker="*", markersize=18, color="#e8743b", linestyle="none", label="selected")
                ax.annotate("selected", (x, y), textcoords="offset points", xytext=(0, 10), ha="center", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel("selection score", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(fig)


def plot_funnel(gen: dict[str, Any]) -> bytes | None:
    leaves = gen.get("leaves") or {}
    if not leaves:
        return None
    stages = sorted({s for v in leaves.values() for s in _rejected_by_stage(v)})
    names = list(leaves)
    fig = _figure(9, 0.6 * len(names) + 1.8)
    ax = fig.add_subplot(1, 1, 1)
    left = [0.0] * len(names)
    series = [("kept", [float(leaves[n].get("kept") or 0) for n in names], "#2f7ed8"),
              ("duplicates", [float(leaves[n].get("duplicates") or 0) for n in names], "#9aa5b1")]
    palette = ["#e8743b", "#f2c14e", "#bf4e30", "#a35d8c", "#6b8f71", "#cc6677"]
    for j, s in enumerate(stages):
        series.append((f"rejected: {s}", [float(_rejected_by_stage(leaves[n]).get(s, 0)) for n in names],
                       palette[j % len(palette)]))
    for label, vals, color in series:
        ax.barh([_short(n) for n in names], vals, left=left, label=label, color=color)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("candidates", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(labelsize=8)
    return _png(fig)


# -- rendering --------------------------------------------------------------------------------------------

def render_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "note":
            lines += [f"> {b.text}", ""]
        elif b.kind == "list":
            lines += [f"- {r[0]}" for r in b.rows] + [""]
        elif b.kind == "table" and b.rows:
            esc = [[c.replace("|", "\\|") for c in r] for r in b.rows]
            lines += ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
            lines += ["| " + " | ".join(r) + " |" for r in esc[1:]] + [""]
        elif b.kind == "img":
            lines += [f"![{b.text}]({b.name})", ""]
    return "\n".join(lines)


STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2933}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #d9e2ec;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #d9e2ec;padding:.25em .5em;text-align:left}
th{background:#f0f4f8}.note{background:#fffbea;border-left:4px solid #f0b429;padding:.4em .8em}
figure{margin:1em 0}figcaption{font-size:.85em;color:#52606d}img{max-width:100%}code{background:#f0f4f8;padding:0 .2em}
"""

# Counts plots the browser could decode, so a headless browser test (or a curious user) can check them.
ONLOAD = ("window.addEventListener('load',function(){var i=[].slice.call(document.images);"
          "document.body.setAttribute('data-plots-total',i.length);"
          "document.body.setAttribute('data-plots-loaded',i.filter(function(x){return x.complete&&x.naturalWidth>0}).length);});")


def _inline(text: str) -> str:
    """HTML of a text with `code` and **bold** spans."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[Block], *, title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "note":
            body.append(f"<p class=\"note\">{_inline(b.text)}</p>")
        elif b.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(r[0])}</li>" for r in b.rows) + "</ul>")
        elif b.kind == "table" and b.rows:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.rows[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows[1:])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f"<figure><img alt=\"{html.escape(b.text)}\" data-plot=\"{html.escape(b.name)}\" "
                        f"src=\"data:image/png;base64,{data}\"><figcaption>{html.escape(b.text)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{ONLOAD}</script>\n</body></html>\n")


# -- small helpers -------------------------------------------------------------------------------------------

def _rejected_by_stage(v: dict[str, Any]) -> dict[str, int]:
    rej = v.get("rejected") or {}
    out: dict[str, int] = {}
    if isinstance(rej, dict):
        for stage, reasons in rej.items():
            out[str(stage)] = sum(int(n) for n in reasons.values()) if isinstance(reasons, dict) else int(reasons or 0)
    elif isinstance(rej, (int, float)):
        out["all stages"] = int(rej)
    return out


def _metric_row(leaf: str, metric: str, e: dict[str, Any]) -> list[str]:
    t, b, d = e.get("trained") or {}, e.get("base") or {}, e.get("diff") or {}
    errors = []
    for role, x in (("base", b), ("trained", t)):
        if x.get("judge_errors") is not None:
            errors.append(f"{role} {x['judge_errors']}" + (f" ({x['judge_error_rate']:.0%})" if x.get("judge_error_rate") is not None else ""))
    n = str(d.get("n", t.get("n", "-")))
    clusters = d.get("clusters") or t.get("clusters")
    if clusters and str(clusters) != n:
        n += f" ({clusters})"
    p = d.get("p_adjusted", d.get("p_value"))
    return [leaf, metric, n, _est(b), _est(t),
            f"{_sign(d.get('diff'))} ({_ci(d)})" if d else "-", _p(p)[2:].replace("= ", "") if d else "-",
            ", ".join(errors) or "-", d.get("verdict", "-") if d else "-"]


def _gap_row(leaf: str, metric: str, e: dict[str, Any]) -> list[str]:
    """The open-book bound of a metric: the base model's open-book score and the share of the gap closed."""
    g = e["gap_closed"]
    share = (f"gap closed {_pct(g['share'])} ({_pct((g.get('ci') or [None])[0])} to "
             f"{_pct((g.get('ci') or [None, None])[1])})" if g.get("share") is not None else "gap closed n/a: no gap")
    return [leaf, f"{metric}, open book", str(g.get("n", "-")), _est(e.get("open_book") or {}), "-", share, "-",
            "-", "-"]


def _pct(x: Any) -> str:
    return f"{100 * x:.0f}%" if isinstance(x, (int, float)) else "n/a"


def _est(x: dict[str, Any]) -> str:
    if not x or x.get("mean") is None:
        return "-"
    return f"{_fmt(x['mean'])} ({_ci(x)})"


def _ci(x: dict[str, Any]) -> str:
    ci = x.get("ci")
    return f"{_fmt(ci[0])} to {_fmt(ci[1])}" if ci else "n/a"


def _fmt(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "n/a"


def _p(x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "p n/a"
    return "p < 0.001" if x < 0.001 else f"p = {x:.3f}"


def _sign(x: Any) -> str:
    return f"{x:+.3f}" if isinstance(x, (int, float)) else "n/a"


def _verdict_words(diff: dict[str, Any]) -> str:
    v = diff.get("verdict")
    if v in ("better", "worse"):
        return f"significantly {v} ({_p(diff.get('p_value'))})"
    if v == "not significant":
        return f"no significant change ({_p(diff.get('p_value'))})"
    return "no comparison"


def _short(name: str, width: int = 38) -> str:
    name = name.split("->", 1)[1] if name.count("->") >= 2 else name
    return name if len(name) <= width else "..." + name[-(width - 3):]


def _same_path(a: Any, b: Any) -> bool:
    if not a or not b:
        return False
    return str(a) == str(b) or Path(str(a)).name == Path(str(b)).name and Path(str(a)).parent.name == Path(str(b)).parent.name
