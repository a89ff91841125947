"""From per-item results to `scores.json`: per leaf, per evaluator, base and trained, with intervals,
paired tests, judge error rates, and a plain verdict per leaf."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graftlm.evaluate.qa import KNOWLEDGE_METRICS, SKILL_METRICS, ItemResult, is_knowledge
from graftlm.evaluate.stats import compare, estimate

ROLES = ("trained", "base")
JUDGE_METRICS = ("judge_correct", "judge_score")


def metric_entry(values: Mapping[str, Sequence[float | None]], *, description: str, n_boot: int, seed: int,
                 higher_is_better: bool = True, errors: Mapping[str, int] | None = None,
                 scale: tuple[float, float] | None = None) -> dict[str, Any]:
    """One evaluator's block: an estimate per role, the paired comparison when both roles are present, and
    (for judged metrics) how many judgments could not be parsed."""
    entry: dict[str, Any] = {"description": description, "higher_is_better": higher_is_better}
    if scale:
        entry["scale"] = list(scale)
    for role, vals in values.items():
        est = estimate(list(vals), n_boot=n_boot, seed=seed).to_json()
        if errors is not None:
            judged = len(vals)
            est["judge_errors"] = errors.get(role, 0)
            est["judge_error_rate"] = errors.get(role, 0) / judged if judged else None
        entry[role] = est
    if "trained" in values and "base" in values:
        cmp = compare(list(values["base"]), list(values["trained"]), n_boot=n_boot, seed=seed)
        entry["diff"] = cmp.to_json()
        if not higher_is_better and cmp.verdict in ("better", "worse"):
            entry["diff"]["verdict"] = "worse" if cmp.verdict == "better" else "better"
    return entry


def qa_entries(results: list[ItemResult], roles: Sequence[str], *, judged: bool, n_boot: int,
               seed: int, unreliable: bool = False) -> dict[str, Any]:
    """Evaluator blocks for a group of items of one kind (knowledge or skill); judged metrics of an
    `unreliable` judge are marked so, and never decide a verdict."""
    if not results:
        return {}
    metrics = KNOWLEDGE_METRICS if is_knowledge(results[0].item) else SKILL_METRICS
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
                                   scale=scale)
        if is_judge and unreliable:
            out[metric]["unreliable"] = True
    return out


PRIMARY = {"knowledge": ("judge_correct", "token_f1", "multiple_choice"), "skill": ("judge_score",)}


def primary_metric(kind: str, evaluators: dict[str, Any]) -> str | None:
    """The metric that answers "did it learn?" for a leaf: for knowledge the judge's accuracy when the judge
    produced usable judgments, else token F1; for skills the judge's rating."""
    for metric in PRIMARY[kind]:
        entry = evaluators.get(metric)
        if not entry:
            continue
        if metric in JUDGE_METRICS:
            rate = entry.get("trained", {}).get("judge_error_rate")
            if rate is None or rate > 0.5 or entry.get("unreliable"):  # a judge that mostly cannot follow the
                continue  # format, or failed its accuracy check, is not the answer
        if entry.get("trained", {}).get("n"):
            return metric
    return None


def verdict(kind: str, evaluators: dict[str, Any]) -> dict[str, Any]:
    """A plain answer for one leaf: learned / not significant / got worse / cannot tell, with the numbers."""
    metric = primary_metric(kind, evaluators)
    if metric is None:
        judged = evaluators.get("judge_score", {}).get("trained")
        if evaluators.get("judge_score", {}).get("unreliable"):
            why = "the judge failed its accuracy check (scores.json judge_accuracy); use a stronger judge (`--judge`)"
        elif judged and judged.get("judge_errors"):
            total = judged["judge_errors"] + judged["n"]
            why = (f"the judge's ratings could not be parsed for {judged['judge_errors']} of {total} answers; "
                   "use a stronger judge (`--judge`)")
        else:
            why = "no judge was used (eval.use_judge is off)" if not judged else "no answers were scored"
        return {"metric": None, "answer": "not evaluated", "text": f"Not evaluated: {why}."}
    entry = evaluators[metric]
    trained = entry["trained"]
    name = entry["description"]
    if "diff" not in entry:
        return {"metric": metric, "answer": "no base model",
                "text": f"Trained: {_fmt(trained['mean'])} {name} (n={trained['n']}); no base model to compare with."}
    diff = entry["diff"]
    base = entry["base"]
    ci = diff.get("ci") or [None, None]
    nums = (f"{_fmt(base['mean'])} -> {_fmt(trained['mean'])} {name}; difference {_sign(diff['diff'])} "
            f"(95% CI {_fmt(ci[0])} to {_fmt(ci[1])}, {_p(diff['p_value'])}, n = {diff['n']})")
    answer = {"better": "yes", "worse": "worse", "not significant": "not significant"}.get(diff["verdict"], "no data")
    text = {
        "yes": f"Yes, it learned: {nums}.",
        "worse": f"No, it got worse: {nums}.",
        "not significant": f"Not significant: {nums}. The change could be noise; more held-out items or more "
                           "training would tell.",
        "no data": f"Cannot tell: {nums}.",
    }[answer]
    also = _also(kind, metric, evaluators)
    if also:
        text += " Also: " + "; ".join(a["text"] for a in also) + "."
    return {"metric": metric, "answer": answer, "text": text, "also": also}


def _also(kind: str, primary: str, evaluators: dict[str, Any]) -> list[dict[str, Any]]:
    """The other usable metrics of a knowledge leaf with their own paired verdicts (context for the answer,
    not a second chance: the leaf's answer is the primary metric's)."""
    out = []
    for metric in PRIMARY[kind]:
        e = evaluators.get(metric)
        if metric == primary or not e or not e.get("diff") or e["diff"].get("p_value") is None:
            continue
        if metric in JUDGE_METRICS and ((e["trained"].get("judge_error_rate") or 0) > 0.5 or e.get("unreliable")):
            continue
        d = e["diff"]
        out.append({"metric": metric, "verdict": d["verdict"], "p_value": d["p_value"],
                    "text": f"{e['description']} {_fmt(e['base']['mean'])} -> {_fmt(e['trained']['mean'])} "
                            f"({d['verdict']}, {_p(d['p_value'])}, n = {d['n']})"})
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "p n/a"
    return "p < 0.001" if x < 0.001 else f"p = {x:.3f}"


def _sign(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}"
