"""From per-item results to `scores.json`: per leaf, per evaluator, base, trained and open-book base, with
intervals, paired tests (Holm-corrected across the leaves and metrics of a report), the share of the
open-book gap closed, judge error rates, and a plain verdict per leaf."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from graftlm.artifacts import hash_obj
from graftlm.evaluate.openbook import ROLE as OPEN_BOOK
from graftlm.evaluate.qa import KNOWLEDGE_METRICS, SKILL_METRICS, ItemResult, is_knowledge
from graftlm.evaluate.stats import compare, decide, estimate, gap_closed, holm
from graftlm.records import EvalItem

ROLES = ("trained", "base")
JUDGE_METRICS = ("judge_correct", "judge_score")
GAP_METRIC = "fact_recall"
"""The metric whose open-book gap is the headline knowledge number."""


def cluster_of(item: EvalItem) -> str:
    """The source an item shares with its siblings: its document chunk, else its seed, else itself (exam
    questions are their own cluster unless they share a `context`)."""
    meta = item.metadata
    if meta.get("chunk_id"):
        return f"chunk:{meta['chunk_id']}"
    if item.source == "exam":
        return f"context:{hash_obj(item.context)[:16]}" if item.context else f"item:{item.id}"
    if isinstance(meta.get("seed"), int) and meta["seed"] >= 0:
        return f"seed:{item.leaf}:{meta['seed']}"
    return f"item:{item.id}"


def metric_entry(values: Mapping[str, Sequence[float | None]], *, description: str, n_boot: int, seed: int,
                 higher_is_better: bool = True, errors: Mapping[str, int] | None = None,
                 scale: tuple[float, float] | None = None,
                 clusters: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """One evaluator's block: an estimate per role, the paired comparison when both roles are present, and
    (for judged metrics) how many judgments could not be parsed. `clusters` labels each value's source."""
    entry: dict[str, Any] = {"description": description, "higher_is_better": higher_is_better}
    if scale:
        entry["scale"] = list(scale)
    for role, vals in values.items():
        est = estimate(list(vals), clusters=clusters, n_boot=n_boot, seed=seed).to_json()
        if errors is not None:
            judged = len(vals)
            est["judge_errors"] = errors.get(role, 0)
            est["judge_error_rate"] = errors.get(role, 0) / judged if judged else None
        entry[role] = est
    if "trained" in values and "base" in values:
        bounds = (scale[0] - scale[1], scale[1] - scale[0]) if scale else None
        cmp = compare(list(values["base"]), list(values["trained"]), clusters=clusters, n_boot=n_boot, seed=seed,
                      bounds=bounds)
        entry["diff"] = cmp.to_json()
        if not higher_is_better and cmp.verdict in ("better", "worse"):
            entry["diff"]["verdict"] = "worse" if cmp.verdict == "better" else "better"
    return entry


def qa_entries(results: list[ItemResult], roles: Sequence[str], *, judged: bool, n_boot: int,
               seed: int) -> dict[str, Any]:
    """Evaluator blocks for a group of items of one kind (knowledge or skill); knowledge metrics scored
    open-book too carry the share of the gap closed."""
    if not results:
        return {}
    metrics = KNOWLEDGE_METRICS if is_knowledge(results[0].item) else SKILL_METRICS
    if any(OPEN_BOOK in r.answers for r in results):
        roles = [*roles, OPEN_BOOK]
    clusters = [cluster_of(r.item) for r in results]
    out: dict[str, Any] = {}
    for metric, description in metrics.items():
        is_judge = metric in JUDGE_METRICS
        if is_judge and not judged:
            continue
        values = {role: [r.values(metric, role) for r in results] for role in roles}
        errors = None
        if is_judge:
            errors = {role: sum(1 for v in vals if v is None) for role, vals in values.items()}
        scale = (1.0, 10.0) if metric == "judge_score" else (0.0, 1.0)
        out[metric] = metric_entry(values, description=description, n_boot=n_boot, seed=seed, errors=errors,
                                   scale=scale, clusters=clusters)
        if all(role in values for role in (*ROLES, OPEN_BOOK)):
            out[metric]["gap_closed"] = gap_closed(values["base"], values["trained"], values[OPEN_BOOK],
                                                   clusters=clusters, n_boot=n_boot, seed=seed).to_json()
    return out


def leaf_blocks(results: list[ItemResult], roles: Sequence[str], *, judged: bool, n_boot: int,
                seed: int) -> dict[str, Any]:
    """Per leaf: its kind, item and cluster counts and evaluator blocks (verdicts come in `finish`)."""
    by_leaf: dict[str, list[ItemResult]] = {}
    for r in results:
        by_leaf.setdefault(r.item.leaf, []).append(r)
    return {leaf: {"type": "knowledge" if is_knowledge(group[0].item) else "skill",
                   "leaf_type": group[0].item.leaf_type, "items": len(group),
                   "clusters": len({cluster_of(r.item) for r in group}),
                   "evaluators": qa_entries(group, roles, judged=judged, n_boot=n_boot, seed=seed)}
            for leaf, group in by_leaf.items()}


def finish(*sections: dict[str, Any]) -> int:
    """Holm-correct the paired tests of every leaf and metric of these leaf sections together, then give each
    leaf its verdict. Returns the number of comparisons in the family."""
    diffs = [e["diff"] for leaves in sections for block in leaves.values()
             for e in block["evaluators"].values() if e.get("diff")]
    adjusted = holm([d.get("p_value") for d in diffs])
    for d, p in zip(diffs, adjusted, strict=True):
        d["p_adjusted"] = p
        d["significant"] = p is not None and decide(d["diff"], p) in ("better", "worse")
        d["verdict"] = decide(d["diff"], p)
    for leaves in sections:
        for block in leaves.values():
            block["verdict"] = verdict(block["type"], block["evaluators"], family=len(diffs))
    return len(diffs)


PRIMARY = {"knowledge": ("fact_recall", "judge_correct", "multiple_choice"), "skill": ("judge_score",)}


def primary_metric(kind: str, evaluators: dict[str, Any]) -> str | None:
    """The metric that answers "did it learn?" for a leaf: for knowledge fact recall (judge-free), else the
    judge's accuracy when the judge produced usable judgments; for skills the judge's rating."""
    for metric in PRIMARY[kind]:
        entry = evaluators.get(metric)
        if not entry:
            continue
        if metric in JUDGE_METRICS:
            rate = entry.get("trained", {}).get("judge_error_rate")
            if rate is None or rate > 0.5:  # a judge that mostly cannot follow the format is not the answer
                continue
        if entry.get("trained", {}).get("n"):
            return metric
    return None


def verdict(kind: str, evaluators: dict[str, Any], family: int = 1) -> dict[str, Any]:
    """A plain answer for one leaf: learned / not significant / got worse / cannot tell, with the numbers
    (p Holm-adjusted over a `family` of comparisons) and, for knowledge, the share of the gap closed."""
    metric = primary_metric(kind, evaluators)
    if metric is None:
        judged = evaluators.get("judge_score", {}).get("trained")
        if judged and judged.get("judge_errors"):
            total = judged["judge_errors"] + judged["n"]
            why = (f"the judge's ratings could not be parsed for {judged['judge_errors']} of {total} answers; "
                   "use a stronger judge (`--judge`)")
        else:
            why = "no judge was used (eval.use_judge is off)" if not judged else "no answers were scored"
        return {"metric": None, "answer": "not evaluated", "text": f"Not evaluated: {why}."}
    entry = evaluators[metric]
    trained = entry["trained"]
    name = entry["description"]
    gap = gap_text(evaluators)
    if "diff" not in entry:
        return {"metric": metric, "answer": "no base model",
                "text": f"Trained: {_fmt(trained['mean'])} {name} (n={trained['n']}); no base model to compare with."}
    diff = entry["diff"]
    base = entry["base"]
    ci = diff.get("ci") or [None, None]
    nums = (f"{_fmt(base['mean'])} -> {_fmt(trained['mean'])} {name}; difference {_sign(diff['diff'])} "
            f"(95% CI {_fmt(ci[0])} to {_fmt(ci[1])}, {_p(diff['p_value'])}{_holm(diff, family)}, n = {diff['n']}"
            f"{_clusters(diff)})")
    answer = {"better": "yes", "worse": "worse", "not significant": "not significant"}.get(diff["verdict"], "no data")
    text = {
        "yes": f"Yes, it learned: {nums}.",
        "worse": f"No, it got worse: {nums}.",
        "not significant": f"Not significant: {nums}. The change could be noise; more held-out items or more "
                           "training would tell.",
        "no data": f"Cannot tell: {nums}.",
    }[answer]
    if gap:
        text += f" {gap}"
    also = _also(kind, metric, evaluators)
    if also:
        text += " Also: " + "; ".join(a["text"] for a in also) + "."
    out = {"metric": metric, "answer": answer, "text": text, "also": also}
    if evaluators.get(GAP_METRIC, {}).get("gap_closed"):
        out["gap_closed"] = evaluators[GAP_METRIC]["gap_closed"]
    return out


def gap_text(evaluators: dict[str, Any]) -> str:
    """One sentence on the share of the open-book gap closed (fact recall), or "" when not measured."""
    g = evaluators.get(GAP_METRIC, {}).get("gap_closed")
    if not g:
        return ""
    where = (f"closed-book base {_fmt(g['base'])}, trained {_fmt(g['trained'])}, open-book base "
             f"{_fmt(g['open_book'])} fact recall")
    if g["share"] is None:
        return f"Share of the open-book gap closed: n/a ({g['note']}; {where})."
    ci = g.get("ci") or [None, None]
    return (f"It closed {_pct(g['share'])} of the open-book gap (95% CI {_pct(ci[0])} to {_pct(ci[1])}; "
            f"{where}).")


def _also(kind: str, primary: str, evaluators: dict[str, Any]) -> list[dict[str, Any]]:
    """The other usable metrics of a knowledge leaf with their own paired verdicts (context for the answer,
    not a second chance: the leaf's answer is the primary metric's)."""
    out = []
    for metric in PRIMARY[kind]:
        e = evaluators.get(metric)
        if metric == primary or not e or not e.get("diff") or e["diff"].get("p_value") is None:
            continue
        if metric in JUDGE_METRICS and (e["trained"].get("judge_error_rate") or 0) > 0.5:
            continue
        d = e["diff"]
        out.append({"metric": metric, "verdict": d["verdict"], "p_value": d["p_value"],
                    "p_adjusted": d.get("p_adjusted"),
                    "text": f"{e['description']} {_fmt(e['base']['mean'])} -> {_fmt(e['trained']['mean'])} "
                            f"({d['verdict']}, {_p(d['p_value'])}, n = {d['n']})"})
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _holm(diff: dict[str, Any], family: int) -> str:
    adj = diff.get("p_adjusted")
    if adj is None or family < 2:
        return ""
    return f", Holm-adjusted over {family} comparisons {_p(adj).removeprefix('p ').removeprefix('= ')}"


def _clusters(diff: dict[str, Any]) -> str:
    k = diff.get("clusters")
    return f" in {k} source clusters" if k and k != diff.get("n") else ""


def _p(x: float | None) -> str:
    if x is None:
        return "p n/a"
    return "p < 0.001" if x < 0.001 else f"p = {x:.3f}"


def _sign(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}"
