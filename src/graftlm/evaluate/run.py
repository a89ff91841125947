"""`graft eval`: did the model learn what the taxonomy taught, and did it forget anything?

`run_eval` reads a generate directory, asks the trained model (and the base model) every held-out
question, has the judge grade the answers, scores knowledge judge-free (token F1, ROUGE-L, multiple
choice by log-likelihood), measures retention (MT-Bench, drift, optional lm-evaluation-harness), and
writes `answers.jsonl`, `scores.json` and `manifest.json` last. Every model call goes through the call
cache in `out/cache/`, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from graftlm.artifacts import (
    MANIFEST,
    hash_obj,
    is_complete,
    read_jsonl,
    read_manifest,
    write_json,
    write_jsonl,
    write_manifest,
)
from graftlm.config import Recipe
from graftlm.config.teacher import TeacherConfig
from graftlm.errors import InputError, Location
from graftlm.evaluate import mc, openbook, retention
from graftlm.evaluate.answers import ask, fingerprint, gather_limited, is_local, open_teacher
from graftlm.evaluate.exam import load_exam
from graftlm.evaluate.judge import JUDGE_STOP, Judgment, close_rating, parse_score_judgment
from graftlm.evaluate.qa import ItemResult, answer_messages, is_knowledge, judge_request, parse_judgment
from graftlm.evaluate.scores import finish, leaf_blocks, metric_entry, qa_entries
from graftlm.records import EvalItem
from graftlm.teacher.base import SamplingOptions, Teacher

log = logging.getLogger(__name__)


def run_eval(model: str, data_dir: Path | None, out: Path, recipe: Recipe, *, base_model: str | None = None,
             questions: Path | None = None, documents: Path | None = None) -> Path:
    """Evaluate `model` (and `base_model`, for before/after and the open-book bound) on the held-out items of
    `data_dir` and/or the exam file `questions` (default `eval.questions`), retrieving open-book passages
    for exam questions from `documents` (default `eval.documents`)."""
    cfg = recipe.eval
    out = Path(out)
    questions = questions or (Path(cfg.questions) if cfg.questions else None)
    documents = documents or (Path(cfg.documents) if cfg.documents else None)
    if data_dir is None and questions is None:
        raise InputError("nothing to evaluate", hint="pass --data (a `graft generate` folder) and/or --questions")
    items = select_items(load_items(Path(data_dir)), cfg.max_items_per_leaf, cfg.seed) if data_dir else []
    exam = load_exam(questions) if questions else []
    chunks = load_chunks(Path(data_dir)) if data_dir else {}
    passages = openbook.plan_passages(items + exam, chunks, openbook.document_passages(documents)
                                      if documents and exam else ()) if base_model else {}
    retention.check_lm_eval(cfg.lm_eval_tasks)
    roles = {"trained": model, **({"base": base_model} if base_model else {})}
    judge_cfg = recipe.judge_or_teacher if cfg.use_judge else None
    mt_questions = retention.load_mt_bench(cfg.mt_bench_questions) if cfg.mt_bench_questions and judge_cfg else []
    input_hash = hash_obj({
        "models": {role: [spec, fingerprint(spec)] for role, spec in roles.items()},
        "judge": [judge_cfg.model_dump(), fingerprint(judge_cfg.model)] if judge_cfg else None,
        "eval": cfg.model_dump(), "items": [it.to_json() for it in items + exam],
        "open_book": {k: [p.text, p.how] for k, p in passages.items()}, "chunks": chunks,
    })
    if is_complete(out, input_hash):
        log.info("evaluation in %s is complete for these inputs; nothing to do", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    start = time.time()

    results = [ItemResult(item) for item in items + exam]
    mt_rows: list[dict[str, Any]] = [{"question": q, "answers": {}, "judgments": {}} for q in mt_questions]
    asyncio.run(_answer_all(roles, results, mt_rows, recipe, out / "cache", passages))
    if judge_cfg is not None:
        asyncio.run(_judge_all(judge_cfg, results, mt_rows, recipe, out / "cache"))
    for r in results:
        r.score_metrics()

    skipped: list[str] = []
    mc_rows = _multiple_choice(roles, items, chunks, recipe, skipped)
    drift_rows = _drift(roles, recipe, skipped)
    lm_eval = _lm_eval(roles, recipe)
    if judge_cfg is None:
        skipped.append("judge: eval.use_judge is off, so skill leaves and MT-Bench are not scored")

    records = [{**r.to_json(), **({"open_book": {"passage": passages[r.item.id].text, "how": passages[r.item.id].how}}
                                  if r.item.id in passages else {})} for r in results]
    records += [{"evaluator": "mt_bench", "question_id": row["question"].get("question_id"),
                 "category": row["question"].get("category"), "turns": row["question"]["turns"],
                 "answers": row["answers"],
                 "judgments": {k: [j.to_json() for j in v] for k, v in row["judgments"].items()}} for row in mt_rows]
    records += [{"evaluator": "multiple_choice", **row["question"].to_json(), "results": row["results"]}
                for row in mc_rows]
    write_jsonl(out / "answers.jsonl", records)

    scores = build_scores(roles, results, mt_rows, mc_rows, drift_rows, lm_eval, recipe,
                          judged=judge_cfg is not None, skipped=skipped)
    scores["judge"] = judge_cfg.model if judge_cfg else None
    write_json(out / "scores.json", scores)
    write_manifest(out, {
        "stage": "eval", "input_hash": input_hash, "model": model, "base_model": base_model,
        "judge": judge_cfg.model if judge_cfg else None, "data_dir": str(data_dir) if data_dir else None,
        "data_input_hash": (read_manifest(Path(data_dir)) or {}).get("input_hash") if data_dir else None,
        "questions": str(questions) if questions else None, "documents": str(documents) if documents else None,
        "config": cfg.model_dump(),
        "counts": {"items": len(items), "exam": len(exam), "open_book": len(passages), "mt_bench": len(mt_rows),
                   "multiple_choice": len(mc_rows), "drift_texts": len(drift_rows)},
        "seconds": round(time.time() - start, 1),
    })
    return out


# -- inputs ------------------------------------------------------------------------------------------

def load_items(data_dir: Path) -> list[EvalItem]:
    """The held-out items of a generate directory, with a clear error when it is not one."""
    path = Path(data_dir) / "eval.jsonl"
    if not path.is_file():
        raise InputError(f"{data_dir} has no eval.jsonl",
                         hint="pass the output folder of `graft generate` (it holds eval.jsonl and manifest.json)")
    items = []
    for i, row in enumerate(read_jsonl(path), start=1):
        try:
            items.append(EvalItem.from_json(row))
        except (KeyError, TypeError) as e:
            raise InputError(f"not an evaluation item: missing or wrong field {e}", location=Location(str(path), i),
                             hint="each line needs id, leaf, leaf_type, question and answer") from None
    if not items:
        raise InputError(f"{path} holds no evaluation items",
                         hint="regenerate with held-out items (each leaf sets some seed Q&A aside)")
    return items


def load_chunks(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """`chunks.jsonl` by leaf; empty when the file is missing (multiple choice is then skipped)."""
    path = Path(data_dir) / "chunks.jsonl"
    by_leaf: dict[str, list[dict[str, Any]]] = {}
    if path.is_file():
        for row in read_jsonl(path):
            by_leaf.setdefault(str(row.get("leaf", "")), []).append(row)
    return by_leaf


def select_items(items: list[EvalItem], per_leaf: int | None, seed: int) -> list[EvalItem]:
    """At most `per_leaf` items of each leaf: a seeded subset, stable when items are added elsewhere."""
    if per_leaf is None:
        return items
    by_leaf: dict[str, list[EvalItem]] = {}
    for it in items:
        by_leaf.setdefault(it.leaf, []).append(it)
    keep: set[str] = set()
    for leaf_items in by_leaf.values():
        ranked = sorted(leaf_items, key=lambda it: hash_obj([seed, it.id]))
        keep.update(it.id for it in ranked[:per_leaf])
    return [it for it in items if it.id in keep]


def model_teacher_config(spec: str, recipe: Recipe) -> TeacherConfig:
    """How an evaluated model is run: the eval section's device, dtype, batch size and API key."""
    return recipe.eval.model_teacher(spec)


# -- answers and judgments -----------------------------------------------------------------------------

async def _answer_all(roles: dict[str, str], results: list[ItemResult], mt_rows: list[dict[str, Any]],
                      recipe: Recipe, cache_dir: Path, passages: dict[str, openbook.Passage]) -> None:
    """Every model answers every item and MT-Bench question, and the base model every knowledge item with
    its passage (open book); one model in memory at a time."""
    opts = SamplingOptions(temperature=0.0, max_tokens=recipe.eval.max_new_tokens, seed=recipe.eval.seed)
    for role, spec in roles.items():
        teacher = open_teacher(model_teacher_config(spec, recipe), cache_dir)
        try:
            limit = recipe.eval.max_in_flight
            texts = await gather_limited(
                [partial(ask, teacher, answer_messages(r.item), opts) for r in results], limit, f"{role} answers")
            for r, text in zip(results, texts, strict=True):
                r.answers[role] = text
            if role == "base" and passages:
                book = [r for r in results if r.item.id in passages]
                texts = await gather_limited([partial(ask, teacher, openbook.open_book_messages(
                    r.item, passages[r.item.id]), opts) for r in book], limit, "base open-book answers")
                for r, text in zip(book, texts, strict=True):
                    r.answers[openbook.ROLE] = text
            convs = await gather_limited([partial(_mt_answers, teacher, row["question"], opts) for row in mt_rows],
                                         limit, f"{role} MT-Bench")
            for row, conv in zip(mt_rows, convs, strict=True):
                row["answers"][role] = conv
        finally:
            await teacher.aclose()


async def _mt_answers(teacher: Teacher, question: dict[str, Any], opts: SamplingOptions) -> list[str]:
    answers: list[str] = []
    for _ in question["turns"]:
        answers.append(await ask(teacher, retention.turn_messages(question, answers), opts))
    return answers


async def _judge_all(judge_cfg: TeacherConfig, results: list[ItemResult], mt_rows: list[dict[str, Any]],
                     recipe: Recipe, cache_dir: Path) -> None:
    opts = SamplingOptions(temperature=0.0, max_tokens=recipe.eval.judge_max_tokens, seed=recipe.eval.seed,
                           stop=JUDGE_STOP)
    judge = open_teacher(judge_cfg, cache_dir)
    try:
        jobs: list[tuple[Any, str, int | None, Any]] = []  # (target, role, turn, messages)
        for r in results:
            for role, answer in r.answers.items():
                jobs.append((r, role, None, judge_request(r.item, answer)))
        for row in mt_rows:
            for role, conv in row["answers"].items():
                for turn in range(len(conv)):
                    jobs.append((row, role, turn, retention.mt_bench_judge_request(row["question"], conv, turn)))
        # Identical requests (e.g. base and trained gave the same answer) are judged once.
        unique = {hash_obj(m): m for *_, m in jobs}
        judged = dict(zip(unique, await gather_limited([partial(ask, judge, m, opts) for m in unique.values()],
                                                       judge_cfg.max_in_flight, "judging"), strict=True))
        texts = [close_rating(judged[hash_obj(m)]) for *_, m in jobs]
        for (target, role, at_turn, _), text in zip(jobs, texts, strict=True):
            if isinstance(target, ItemResult):
                target.judgments[role] = parse_judgment(target.item, text)
            else:
                slots = target["judgments"].setdefault(role, [None] * len(target["answers"][role]))
                slots[at_turn or 0] = parse_score_judgment(text)
    finally:
        await judge.aclose()


# -- log-likelihood evaluators (local models only) -------------------------------------------------------

def _local_roles(roles: dict[str, str], what: str, skipped: list[str]) -> bool:
    remote = [spec for spec in roles.values() if not is_local(spec)]
    if remote:
        skipped.append(f"{what}: needs local models (folders, GGUF files or `default`), not {', '.join(remote)}")
        return False
    return True


def _multiple_choice(roles: dict[str, str], items: list[EvalItem], chunks: dict[str, list[dict[str, Any]]],
                     recipe: Recipe, skipped: list[str]) -> list[dict[str, Any]]:
    cfg = recipe.eval
    if not cfg.multiple_choice:
        return []
    leaves = sorted({it.leaf for it in items if is_knowledge(it)})
    if not leaves:
        return []
    if not chunks:
        skipped.append("multiple choice: the generate directory has no chunks.jsonl")
        return []
    if not _local_roles(roles, "multiple choice", skipped):
        return []
    questions = [q for leaf in leaves
                 for q in mc.build_questions(leaf, chunks.get(leaf, []), limit=cfg.mc_questions_per_leaf,
                                             options=cfg.mc_options, seed=cfg.seed)]
    if not questions:
        skipped.append("multiple choice: the documents gave no sentence with enough facts of one kind for distractors")
        return []
    from graftlm.models import load_model

    rows: list[dict[str, Any]] = [{"question": q, "results": {}} for q in questions]
    for role, spec in roles.items():
        model, tok = load_model(spec, device=recipe.eval.device, dtype=recipe.eval.dtype)
        for row, res in zip(rows, mc.score_questions(model, tok, questions), strict=True):
            row["results"][role] = res
        del model
    return rows


def _drift(roles: dict[str, str], recipe: Recipe, skipped: list[str]) -> list[dict[str, float]]:
    if not recipe.eval.drift or "base" not in roles:
        return []
    if not _local_roles(roles, "drift", skipped):
        return []
    from graftlm.models import load_model

    base = load_model(roles["base"], device=recipe.eval.device, dtype="float32")
    trained = load_model(roles["trained"], device=recipe.eval.device, dtype="float32")
    if not retention.same_vocab(base[1], trained[1]):
        skipped.append("drift: base and trained model have different tokenizers")
        return []
    return retention.drift(base, trained)


def _lm_eval(roles: dict[str, str], recipe: Recipe) -> dict[str, Any]:
    tasks = recipe.eval.lm_eval_tasks
    if not tasks:
        return {}
    from graftlm.models import materialize, pick_device, resolve

    device = pick_device(recipe.eval.device)
    return {role: retention.run_lm_eval(materialize(resolve(spec)), tasks, device)  # pragma: no cover
            for role, spec in roles.items() if is_local(spec)}


# -- scores.json -------------------------------------------------------------------------------------------

def build_scores(roles: dict[str, str], results: list[ItemResult], mt_rows: list[dict[str, Any]],
                 mc_rows: list[dict[str, Any]], drift_rows: list[dict[str, float]], lm_eval: dict[str, Any],
                 recipe: Recipe, *, judged: bool, skipped: list[str]) -> dict[str, Any]:
    cfg = recipe.eval
    nb, sd = cfg.bootstrap_samples, cfg.seed
    role_names = list(roles)
    held_out = [r for r in results if r.item.source != "exam"]
    exam = [r for r in results if r.item.source == "exam"]
    leaves = leaf_blocks(held_out, role_names, judged=judged, n_boot=nb, seed=sd)
    for leaf, block in leaves.items():
        leaf_mc = [row for row in mc_rows if row["question"].leaf == leaf]
        if leaf_mc:
            block["evaluators"]["multiple_choice"] = metric_entry(
                {role: [row["results"][role]["correct"] for row in leaf_mc] for role in role_names},
                description=f"multiple-choice accuracy from the documents ({cfg.mc_options} options, 0..1)",
                scale=(0.0, 1.0), n_boot=nb, seed=sd)
    exam_leaves = leaf_blocks(exam, role_names, judged=judged, n_boot=nb, seed=sd)
    comparisons = finish(leaves, exam_leaves)

    overall: dict[str, Any] = {}
    for kind, group in (("knowledge", [r for r in held_out if is_knowledge(r.item)]),
                        ("skill", [r for r in held_out if not is_knowledge(r.item)])):
        if group:
            overall[kind] = qa_entries(group, role_names, judged=judged, n_boot=nb, seed=sd)
    if mc_rows:
        overall.setdefault("knowledge", {})["multiple_choice"] = metric_entry(
            {role: [row["results"][role]["correct"] for row in mc_rows] for role in role_names},
            description="multiple-choice accuracy from the documents (0..1)", scale=(0.0, 1.0), n_boot=nb, seed=sd)

    ret: dict[str, Any] = {}
    if mt_rows:
        per_q: dict[str, list[float | None]] = {}
        errors: dict[str, int] = {}
        for role in role_names:
            vals: list[float | None] = []
            for row in mt_rows:
                js: list[Judgment | None] = row["judgments"].get(role, [])
                scores = [j.score for j in js if j is not None and j.score is not None]
                errors[role] = errors.get(role, 0) + sum(1 for j in js if j is None or j.score is None)
                vals.append(sum(scores) / len(scores) if scores else None)
            per_q[role] = vals
        entry = metric_entry(per_q, description="MT-Bench rating, mean of both turns (1..10)", scale=(1.0, 10.0),
                             errors=errors, n_boot=nb, seed=sd)
        for role in role_names:  # errors are counted per judged turn
            turns = sum(len(row["answers"].get(role, [])) for row in mt_rows)
            entry[role]["judged_turns"] = turns
            entry[role]["judge_error_rate"] = errors[role] / turns if turns else None
        entry["questions"] = len(mt_rows)
        ret["mt_bench"] = entry
    if drift_rows:
        ret["drift"] = {
            "kl": metric_entry({"trained": [r["kl"] for r in drift_rows]}, higher_is_better=False,
                               description="per-token KL(base || trained) on built-in general texts (0 = no change)",
                               n_boot=nb, seed=sd),
            "nll": metric_entry({"trained": [r["nll_trained"] for r in drift_rows],
                                 "base": [r["nll_base"] for r in drift_rows]}, higher_is_better=False,
                                description="mean negative log-likelihood per token of built-in general answers",
                                n_boot=nb, seed=sd),
            "texts": len(drift_rows),
        }
        nll = ret["drift"]["nll"]
        nll["perplexity"] = {role: retention.perplexity(nll[role]["mean"]) for role in ("trained", "base")}
    if lm_eval:
        ret["lm_eval"] = lm_eval

    return {
        "models": roles,
        "bootstrap_samples": cfg.bootstrap_samples,
        "confidence": 0.95,
        "leaves": leaves,
        "overall": overall,
        "exam": {"leaves": exam_leaves, "overall": qa_entries(exam, role_names, judged=judged, n_boot=nb, seed=sd)}
        if exam else None,
        "multiple_comparisons": {"method": "holm", "comparisons": comparisons,
                                 "note": "p_adjusted and verdicts are Holm-corrected across the leaves and metrics "
                                         "of this report (held-out and exam); intervals are per comparison"},
        "retention": ret,
        "skipped": skipped,
        "judge_errors": judge_error_summary(results, mt_rows) if judged else None,
    }


def judge_error_summary(results: list[ItemResult], mt_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many of all judgments had no parsable rating: the judge error rate of the whole evaluation."""
    ratings = [j.score for r in results for j in r.judgments.values()]
    ratings += [j.score if j is not None else None for row in mt_rows for js in row["judgments"].values() for j in js]
    bad = sum(1 for x in ratings if x is None)
    return {"judgments": len(ratings), "unparsable": bad, "rate": bad / len(ratings) if ratings else None}
