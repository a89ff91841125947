"""`run_generate`: synthetic data for the selected leaves of a taxonomy, resumable after any crash.

Read top to bottom: select leaves, validate, set eval items aside, plan units (one per seed or chunk),
run every pending unit concurrently through one request pool, journal each finished unit, then per leaf
remove near-duplicates, split off generated eval items, cap at the target, count each knowledge fact's kept
views (`graftlm.generate.coverage`), and write `train.jsonl`, `eval.jsonl`, `rejects.jsonl`, `chunks.jsonl`,
`facts.jsonl` and finally `manifest.json`.

Resume: finished units are in `work/units.jsonl` (one line per unit, written when it finishes); the
requests of unfinished units are replayed from the call cache `calls.sqlite`. Output files are written
atomically from the journal at the end, so they are never half-written or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.artifacts import (
    MANIFEST,
    append_jsonl,
    hash_obj,
    read_manifest,
    write_jsonl,
    write_manifest,
)
from graftlm.config import GenerateConfig, Recipe, TeacherConfig
from graftlm.errors import InputError, Location, StageError, TeacherError
from graftlm.generate.accounting import CORE_TASKS, LeafAccount
from graftlm.generate.chunking import Chunk, TokenCounter, chunk_document, tokenizer_counter, word_estimate
from graftlm.generate.coverage import dedup_facts, leaf_coverage
from graftlm.generate.dedup import NearDuplicateIndex
from graftlm.generate.facts import run_facts_unit
from graftlm.generate.freeform import run_freeform_unit
from graftlm.generate.grounded import run_grounded_unit
from graftlm.generate.knowledge import rotate_examples, run_aux_unit, run_knowledge_unit
from graftlm.generate.pipeline import (
    AuxPayload,
    ChunkText,
    Context,
    FactsPayload,
    FreeformPayload,
    GroundedPayload,
    KnowledgeExample,
    KnowledgePayload,
    Unit,
    UnitResult,
    candidates_per_leaf,
)
from graftlm.generate.pool import RequestPool
from graftlm.generate.split import SELECTION, TEST, TRAIN, SplitPlan, group_of, per_item_parts, plan_split
from graftlm.records import EvalItem
from graftlm.taxonomy.model import Leaf, LeafType
from graftlm.teacher.base import Teacher
from graftlm.teacher.factory import cached, make_teacher

log = logging.getLogger(__name__)

JOURNAL = Path("work") / "units.jsonl"
CALLS = "calls.sqlite"

@dataclass
class LeafPlan:
    """One leaf's work: held-out eval items, units, chunks, and the seed questions dedup checks against."""

    leaf: Leaf
    eval_items: list[EvalItem] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    seed_questions: list[str] = field(default_factory=list)
    """Dedup texts of the seeds: the question, or for grounded skills the context and the question."""


# ---------------------------------------------------------------------------------------------------
# Entry points


def run_generate(taxonomy: Path, out: Path, recipe: Recipe, *, leaves: list[Leaf] | None = None,
                 base: str | None = None, progress: bool = True, teacher: Teacher | None = None,
                 judge: Teacher | None = None) -> Path:
    """Generate training and eval data for the selected leaves into `out`; returns `out`.

    `teacher`/`judge` replace the ones the recipe names (tests and benchmarks pass their own); they
    are wrapped with the call cache like the recipe's."""
    taxonomy, out = Path(taxonomy), Path(out)
    cfg = recipe.generate
    _check_out(out)
    leaves = _select(taxonomy, leaves, base)
    counter = _token_counter(recipe.teacher)
    key = run_key(recipe, teacher.model_id if teacher else None, (judge or teacher).model_id if teacher else None)
    plans = [plan_leaf(leaf, recipe, counter, key) for leaf in leaves]
    input_hash = hash_obj({
        "leaves": [_leaf_key(p) for p in plans],
        "generate": cfg.model_dump(mode="json"),
        "teacher": recipe.teacher.model_dump(mode="json"),
        "judge": recipe.judge_or_teacher.model_dump(mode="json"),
    })
    previous = read_manifest(out)
    if previous is not None and previous.get("input_hash") == input_hash:
        log.info("generate: %s is complete for these inputs; nothing to do", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the directory is unfinished from here on

    journal = out / JOURNAL
    done = read_journal(journal)
    pending = [u for p in plans for u in p.units if u.unit_id not in done]
    if done:
        log.info("generate: resuming, %d units finished before, %d to go", len(done), len(pending))

    if teacher is None:
        teacher, judge = build_teachers(recipe, out / CALLS)
    else:
        teacher = cached(teacher, out / CALLS)
        judge = teacher if judge is None else cached(judge, out / CALLS)
    assert judge is not None
    bar = _Progress(plans, cfg.samples_per_leaf, enabled=progress)
    bar.resume([done[u.unit_id] for p in plans for u in p.units if u.unit_id in done])
    pools: dict[str, Any] = {}
    try:
        asyncio.run(_run_units(pending, teacher, judge, recipe, journal, done, bar, pools))
    finally:
        bar.close()
    _check_failures(pools, cfg.max_failed_share, journal)
    return finish(out, taxonomy, recipe, plans, done, input_hash, teacher.model_id, judge.model_id, pools)


def preview_generate(taxonomy: Path, out: Path, recipe: Recipe, *, leaves: list[Leaf] | None = None,
                     base: str | None = None) -> list[dict[str, Any]]:
    """A handful of samples (with scores) and rejects for the first selected leaf, fast: a budget of
    `preview_samples` candidates over at most that many units, no output files except the call cache. Returns the kept samples and rejects as dicts."""
    taxonomy, out = Path(taxonomy), Path(out)
    _check_out(out)
    leaves = _select(taxonomy, leaves, base)[:1]
    cfg = recipe.generate.model_copy(update={"samples_per_leaf": recipe.generate.preview_samples, "oversample": 1.0})
    recipe = recipe.model_copy(update={"generate": cfg})
    plan = plan_leaf(leaves[0], recipe, _token_counter(recipe.teacher), run_key(recipe))
    n = cfg.preview_samples
    aux = [u for u in plan.units if isinstance(u.payload, AuxPayload)]
    facts = [u for u in plan.units if isinstance(u.payload, FactsPayload)]  # one chunk: its views are many
    units = [u for u in plan.units if u not in aux and u not in facts][:n] + facts[:1] + aux[:1]
    out.mkdir(parents=True, exist_ok=True)
    teacher, judge = build_teachers(recipe, out / CALLS)
    done: dict[str, UnitResult] = {}
    asyncio.run(_run_units(units, teacher, judge, recipe, None, done, _Progress([], 0, enabled=False), {}))
    results: list[dict[str, Any]] = []
    for u in units:
        r = done[u.unit_id]
        results.extend({"kind": "sample", **c} for c in r.candidates)
        results.extend({"kind": "reject", **rej} for rej in r.rejects)
    return results


# ---------------------------------------------------------------------------------------------------
# Selection, validation and planning


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder", hint="pass a new or existing output folder")


def _select(taxonomy: Path, leaves: list[Leaf] | None, base: str | None) -> list[Leaf]:
    if leaves is None:
        if not taxonomy.is_dir():
            raise InputError(f"taxonomy folder not found: {taxonomy}", hint="pass the root folder of a taxonomy")
        from graftlm.taxonomy.load import select_leaves

        leaves = select_leaves(taxonomy, base=base)
    if not leaves:
        raise InputError(f"no leaves selected in {taxonomy}" + (f" (changed against {base})" if base else ""),
                         hint="use `--base empty` for every leaf, or `--leaf NAME`; `graft taxonomy show` lists leaves")
    for leaf in leaves:
        seeds = leaf.knowledge_seeds if leaf.is_knowledge else leaf.skill_seeds
        if not seeds:
            raise InputError("leaf has no seed examples", location=Location(str(leaf.path), field="seed_examples"),
                             hint="add seed examples (at least 5) to the leaf's qna.yaml")
        if leaf.type is LeafType.GROUNDED_SKILL and any(not s.context for s in leaf.skill_seeds):
            raise InputError("grounded skill leaf has a seed without context",
                             location=Location(str(leaf.path), field="seed_examples[].context"),
                             hint="give every seed of a grounded skill a context, or remove all contexts")
        if leaf.is_knowledge and leaf.document is None:
            raise InputError("knowledge leaf has no document", location=Location(str(leaf.path), field="document"),
                             hint="add `document: {repo, commit, patterns}` to the leaf's qna.yaml")
    return leaves


def _token_counter(teacher: TeacherConfig) -> TokenCounter:
    """The teacher's tokenizer when it is a local model, else a word-based estimate."""
    if not teacher.model.is_local:
        return word_estimate
    try:
        from graftlm.models import load_tokenizer

        return tokenizer_counter(load_tokenizer(teacher.model))
    except Exception as e:  # a missing tokenizer only makes chunk sizes approximate
        log.warning("cannot load the teacher's tokenizer (%s); chunk sizes are estimated from words", e)
        return word_estimate


def _hold_out(leaf: Leaf, cfg_seed: int, count: int, total: int) -> set[int]:
    rng = random.Random(f"{cfg_seed}:{leaf.name}")
    count = max(0, min(count, total - 1))
    return set(rng.sample(range(total), count))


def run_key(recipe: Recipe, teacher_id: str | None = None, judge_id: str | None = None) -> str:
    """What shapes every unit's output besides its own inputs: the generate config (without the keys
    that only steer the run) and the teacher and judge."""
    def who(c: TeacherConfig) -> list[Any]:
        return [c.model, c.model_name, c.use_completions]

    cfg = recipe.generate.model_dump(mode="json", exclude={"preview_samples", "max_failed_share"})
    return hash_obj([cfg, teacher_id or who(recipe.teacher), judge_id or who(recipe.judge_or_teacher)])


def plan_leaf(leaf: Leaf, recipe: Recipe, count: TokenCounter = word_estimate, key: str = "") -> LeafPlan:
    """Set the leaf's eval items aside and list its units, with per-unit budgets that add up to about
    `samples_per_leaf * oversample` candidates."""
    cfg = recipe.generate
    plan = LeafPlan(leaf)
    want = candidates_per_leaf(cfg)
    if leaf.is_knowledge:
        examples = []
        for i, seed in enumerate(leaf.knowledge_seeds):
            held = _hold_out(leaf, cfg.seed + i, cfg.eval_qas_per_seed, len(seed.qas))
            kept = []
            for j, qa in enumerate(seed.qas):
                plan.seed_questions.append(qa.question)
                if j in held:
                    plan.eval_items.append(_eval_item(leaf, qa.question, qa.answer, None, i,
                                                      {"seed_context": seed.context}))
                else:
                    kept.append(qa)
            examples.append(KnowledgeExample(i, seed.context, tuple(kept)))
        plan.chunks = _chunks(leaf, cfg.chunk_tokens, count)
        per_chunk = max(1, math.ceil(want / max(1, len(plan.chunks))))
        chunks = [ChunkText(c.chunk_id, c.doc, c.doc_sha256, c.text) for c in plan.chunks]
        for chunk in chunks if cfg.facts != "off" else []:
            plan.units.append(Unit(leaf, len(plan.units), FactsPayload(chunk, cfg.facts), key))
        for chunk in chunks if cfg.facts == "off" else []:
            shown = tuple(examples[k] for k in rotate_examples(len(examples), len(plan.units), cfg.seeds_per_chunk))
            plan.units.append(Unit(leaf, len(plan.units), KnowledgePayload(chunk, shown, per_chunk), key))
        for chunk in chunks:
            for task in cfg.aux_tasks:
                plan.units.append(Unit(leaf, len(plan.units), AuxPayload(chunk, task), key))
        return plan

    seeds = leaf.skill_seeds
    held = _hold_out(leaf, cfg.seed, cfg.eval_seeds_per_leaf, len(seeds))
    train = [(i, s) for i, s in enumerate(seeds) if i not in held]
    for i, s in enumerate(seeds):
        plan.seed_questions.append(_grounded_text(s.context, s.question) if s.context else s.question)
        if i in held:
            plan.eval_items.append(_eval_item(leaf, s.question, s.answer, s.context, i, {}))
    if leaf.type is LeafType.GROUNDED_SKILL:
        per_seed = max(1, math.ceil(want / (len(train) * cfg.questions_per_context)))
        for i, s in train:
            plan.units.append(Unit(leaf, len(plan.units), GroundedPayload(i, s.question, s.answer, s.context, per_seed), key))
    else:
        per_seed = max(1, math.ceil(want / len(train)))
        for i, s in train:
            plan.units.append(Unit(leaf, len(plan.units), FreeformPayload(i, s.question, s.answer, per_seed), key))
    return plan


def _eval_item(leaf: Leaf, question: str, answer: str, context: str | None, seed: int,
               metadata: dict[str, Any], source: str = "seed") -> EvalItem:
    return EvalItem(id=hash_obj([leaf.name, source, question])[:20], leaf=leaf.name, leaf_type=leaf.type.value,
                    question=question, answer=answer, context=context, source=source,
                    metadata={"seed": seed, **metadata})


def _chunks(leaf: Leaf, max_tokens: int, count: TokenCounter) -> list[Chunk]:
    from graftlm.taxonomy.documents import load_leaf_documents

    docs = load_leaf_documents(leaf)
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk_document(doc.path, doc.sha256, doc.text, max_tokens, count))
    if not chunks:
        raise InputError("the leaf's documents hold no text", location=Location(str(leaf.path), field="document.patterns"),
                         hint="check that document.patterns match Markdown or PDF files with text")
    return chunks


def _leaf_key(plan: LeafPlan) -> dict[str, Any]:
    return {"name": plan.leaf.name, "units": [u.unit_id for u in plan.units],
            "eval": [e.id for e in plan.eval_items]}


def _taxonomy_commit(taxonomy: Path) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(taxonomy), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (res.stdout.strip() or None) if res.returncode == 0 else None


# ---------------------------------------------------------------------------------------------------
# Teachers and the concurrent run


def build_teachers(recipe: Recipe, cache_path: Path) -> tuple[Teacher, Teacher]:
    """Teacher and judge (the same object when the judge is the teacher), both behind the call cache. A fake
    one answers generation's prompts (`graftlm.generate.fake_responses`)."""
    from graftlm.generate.fake_responses import respond

    teacher = make_teacher(recipe.teacher, cache_path=cache_path, responders=[respond])
    if recipe.judge is None or recipe.judge == recipe.teacher:
        return teacher, teacher
    return teacher, make_teacher(recipe.judge, cache_path=cache_path, responders=[respond])


async def run_unit(ctx: Context, unit: Unit) -> UnitResult:
    """Run one unit through the pipeline its payload's type names."""
    p = unit.payload
    if isinstance(p, FreeformPayload):
        return await run_freeform_unit(ctx, unit, p)
    if isinstance(p, GroundedPayload):
        return await run_grounded_unit(ctx, unit, p)
    if isinstance(p, KnowledgePayload):
        return await run_knowledge_unit(ctx, unit, p)
    if isinstance(p, FactsPayload):
        return await run_facts_unit(ctx, unit, p)
    return await run_aux_unit(ctx, unit, p)


async def _run_units(units: list[Unit], teacher: Teacher, judge: Teacher, recipe: Recipe, journal: Path | None,
                     done: dict[str, UnitResult], bar: _Progress, pools: dict[str, Any]) -> None:
    """Run every unit as its own task through one request pool; journal each as it finishes."""
    teacher_pool = RequestPool(teacher, recipe.teacher.max_in_flight)
    judge_pool = teacher_pool if judge is teacher else RequestPool(judge, recipe.judge_or_teacher.max_in_flight)
    ctx = Context(recipe.generate, teacher_pool, judge_pool, teacher.model_id, judge.model_id, on_kept=bar.kept)
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)

    async def one(unit: Unit) -> None:
        result = await run_unit(ctx, unit)
        done[unit.unit_id] = result
        # A unit hit by a teacher failure is used in this run but not journaled: a rerun retries it
        # (its successful requests come from the call cache).
        if journal is not None and not any(r["reason"].startswith("teacher_error") for r in result.rejects):
            append_jsonl(journal, result.to_json())
        bar.unit_done(unit)

    try:
        tasks = [asyncio.create_task(one(u)) for u in units]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        pools["teacher"] = teacher_pool.stats()
        if judge_pool is not teacher_pool:
            pools["judge"] = judge_pool.stats()
        with contextlib.suppress(Exception):
            await teacher.aclose()
        if judge is not teacher:
            with contextlib.suppress(Exception):
                await judge.aclose()


def _check_failures(pools: dict[str, Any], max_share: float, journal: Path) -> None:
    """Stop (keeping finished work) when more teacher requests failed than the config tolerates."""
    for role, st in pools.items():
        failed, total = int(st["failures"]), int(st["failures"]) + int(st["requests"])
        if failed and failed / total > max_share:
            raise TeacherError(
                f"{failed} of {total} {role} requests failed (first: {st['first_error']})",
                hint="check that the teacher answers (`graft chat`, or `curl URL/models`), then rerun the same "
                     f"command: finished work is kept in {journal.parent} and completed calls are not repeated "
                     "(generate.max_failed_share sets the tolerance)")


def read_journal(path: Path) -> dict[str, UnitResult]:
    """Finished units from the journal. A half-written last line (a kill mid-append) is cut off so the
    next append starts on a fresh line."""
    import json

    if not path.is_file():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    done: dict[str, UnitResult] = {}
    for line in data[:end].decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            result = UnitResult.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("skipping a damaged line in %s", path)
            continue
        done[result.unit_id] = result
    return done


class _Progress:
    """One tqdm bar (samples kept, rate, ETA) and a status line per leaf when its last unit finishes."""

    def __init__(self, plans: list[LeafPlan], target: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.remaining = Counter(p.leaf.name for p in plans for _ in p.units)
        self.kept_by_leaf: Counter[str] = Counter()
        self.target = target
        self.bar: Any = None
        if enabled and plans:
            from tqdm import tqdm

            self.bar = tqdm(total=target * len(plans), unit="sample", desc="generate", file=sys.stderr,
                            dynamic_ncols=True, disable=None)

    def resume(self, results: list[UnitResult]) -> None:
        """Count the candidates of units finished in an earlier run."""
        for r in results:
            self.remaining[r.leaf] -= 1
            for c in r.candidates:
                if c["metadata"]["task"] in CORE_TASKS:
                    self.kept(r.leaf)

    def kept(self, leaf: str) -> None:
        self.kept_by_leaf[leaf] += 1
        if self.bar is not None and self.kept_by_leaf[leaf] <= self.target:
            self.bar.update(1)

    def unit_done(self, unit: Unit) -> None:
        self.remaining[unit.leaf.name] -= 1
        if self.remaining[unit.leaf.name] == 0 and self.enabled:
            line = f"leaf {unit.leaf.name}: done, {self.kept_by_leaf[unit.leaf.name]} candidates passed the judges"
            if self.bar is not None:
                self.bar.write(line, file=sys.stderr)
            else:
                log.info(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------------
# Finishing: dedup, eval split, cap, write


def finish(out: Path, taxonomy: Path, recipe: Recipe, plans: list[LeafPlan], done: dict[str, UnitResult],
           input_hash: str, teacher_id: str, judge_id: str, pools: dict[str, Any]) -> Path:
    """Turn the finished units into the output files; `manifest.json` last."""
    cfg = recipe.generate
    train: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    accounts: dict[str, LeafAccount] = {}
    warnings: list[str] = []
    for plan in plans:
        leaf = plan.leaf
        acc = accounts[leaf.name] = LeafAccount(leaf.type.value, leaf.branch)
        results = [done[u.unit_id] for u in plan.units if u.unit_id in done]
        missing = len(plan.units) - len(results)
        if missing:
            raise StageError(f"{missing} units of leaf {leaf.name} did not finish",
                             hint="rerun the same command to resume")
        for r in results:
            acc.generated += r.generated
            for rej in r.rejects:
                acc.reject(rej["stage"], rej["reason"])
                rejects.append(rej)
        kept, leaf_rejects, leaf_evals = select_leaf(plan, results, cfg, acc)
        found = leaf_facts(results, cfg.dedup_threshold, acc.split)
        if found:
            acc.coverage = leaf_coverage(found, kept, cfg.views.target)
            facts.extend(found)
        rejects.extend(leaf_rejects)
        train.extend(kept)
        evals.extend(e.to_json() for e in plan.eval_items)
        evals.extend(leaf_evals)
        chunks.extend(c.to_json(leaf.name) for c in plan.chunks)
        if (warning := acc.warning(leaf.name)) is not None:
            warnings.append(warning)
            log.warning(warning)

    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "eval.jsonl", evals)
    write_jsonl(out / "rejects.jsonl", rejects)
    write_jsonl(out / "chunks.jsonl", chunks)
    files = {"train": "train.jsonl", "eval": "eval.jsonl", "rejects": "rejects.jsonl", "chunks": "chunks.jsonl"}
    if facts or (cfg.facts != "off" and any(p.leaf.is_knowledge for p in plans)):
        write_jsonl(out / "facts.jsonl", facts)
        files["facts"] = "facts.jsonl"
    if not train:
        raise nothing_kept(out, warnings, sum(a.generated for a in accounts.values()))
    manifest = {
        "stage": "generate",
        "input_hash": input_hash,
        "teacher": teacher_id,
        "judge": judge_id,
        "taxonomy": str(taxonomy),
        "taxonomy_commit": _taxonomy_commit(taxonomy),
        "config": cfg.model_dump(mode="json"),
        "files": files,
        "leaves": {name: a.to_json() for name, a in accounts.items()},
        "counts": {"train": len(train), "eval": len(evals), "rejects": len(rejects), "chunks": len(chunks),
                   "facts": len(facts),
                   "generated": sum(a.generated for a in accounts.values()),
                   "duplicates": sum(a.duplicates for a in accounts.values())},
        "calls": pools,
        "warnings": warnings,
    }
    write_manifest(out, manifest)
    return out


def nothing_kept(out: Path, warnings: list[str], generated: int) -> StageError:
    """The error of a generation that kept no training sample: why, per leaf, and what to try next. The
    data files stay for inspection; without a manifest the folder is not taken for finished output."""
    reasons = "\n  ".join(warnings) or "no leaf produced a candidate"
    return StageError(
        f"generate kept 0 training samples ({generated} candidates generated); there is nothing to train on:\n  "
        f"{reasons}",
        hint=f"see what the teacher writes and how it is judged with `graft generate TAXONOMY --out {out} --preview`, "
             f"and the reasons in {out / 'rejects.jsonl'}; a teacher too small to judge (such as the embedded "
             "`default` model) needs the judges off: set generate.judge_questions, generate.rate_pairs and "
             "generate.judge_knowledge to false in the recipe (as recipes/cpu-demo.yaml does), or use a larger "
             "teacher or judge",
    )


FACT_PART = {TEST: "eval", SELECTION: SELECTION}
"""A fact's `part` in facts.jsonl by its chunk's split part (the reported test part is called `eval` there)."""


def leaf_facts(results: list[UnitResult], threshold: float, split: dict[str, Any]) -> list[dict[str, Any]]:
    """A leaf's facts (facts mode) deduplicated across its chunks, each with its chunk's split part
    (`train`, `eval` for the reported test part, `selection`)."""
    plan = SplitPlan.from_json(split)
    return dedup_facts([f for r in results for f in r.facts], threshold,
                       lambda chunk_id: FACT_PART.get(plan.part(f"chunk:{chunk_id}"), TRAIN))


def _round_robin(results: list[UnitResult], keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Candidates interleaved over their sources (first of each, then second, ...), so a cap is fair to seeds:
    the fact a candidate states (facts mode: `metadata.fact_ids`), else the unit that made it."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        for c in r.candidates:
            if keep(c):
                groups.setdefault(_source(r, c), []).append(c)
    lists = list(groups.values())
    out: list[dict[str, Any]] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _cloze_sibling(cand: dict[str, Any], hit: str, fact_of: dict[str, str]) -> bool:
    """A cloze question that only looks like an earlier question of the same fact: the two ask for different
    parts of one sentence, so both are kept (a match with a seed or a held-out item still rejects it)."""
    facts = cand["metadata"].get("fact_ids")
    return cand["metadata"].get("view") == "cloze" and bool(facts) and fact_of.get(hit) == facts[0]


def _source(result: UnitResult, candidate: dict[str, Any]) -> str:
    fact_ids = candidate["metadata"].get("fact_ids")
    return f"fact:{fact_ids[0]}" if fact_ids else f"unit:{result.unit_id}"


def _grounded_text(context: str | None, question: str) -> str:
    return f"{context}\n\n{question}"


def split_leaf(leaf: Leaf, results: list[UnitResult], unique: list[dict[str, Any]],
               cfg: GenerateConfig) -> tuple[SplitPlan, dict[str, str]]:
    """The leaf's split by source group (chunk or seed) and the part of every unique candidate."""
    groups = [group_of(c) for r in results for c in r.candidates]
    seed = f"{cfg.seed}:{leaf.name}"
    split = plan_split(groups, cfg.eval_generated_share, cfg.eval_selection_share, seed,
                       "chunk" if leaf.is_knowledge else "seed" if leaf.type is LeafType.GROUNDED_SKILL else "sample")
    if split.note:
        log.warning("leaf %s: %s", leaf.name, split.note)
        parts = per_item_parts([c["id"] for c in unique], cfg.eval_generated_share, cfg.eval_selection_share, seed)
        return split, {c["id"]: parts.get(c["id"], TRAIN) for c in unique}
    return split, {c["id"]: split.part(group_of(c)) for c in unique}


def select_leaf(plan: LeafPlan, results: list[UnitResult], cfg: GenerateConfig,
                acc: LeafAccount) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Dedup against seeds, held-out items and earlier candidates; move whole held-out chunks (or seeds) to
    eval; cap at target."""
    leaf = plan.leaf
    index = NearDuplicateIndex(cfg.dedup_threshold)
    for i, q in enumerate(plan.seed_questions):
        index.add(f"seed:{i}", q)
    for e in plan.eval_items:
        index.add(f"eval:{e.id}", _grounded_text(e.context, e.question) if e.context else e.question)
    rejects: list[dict[str, Any]] = []
    unique: list[dict[str, Any]] = []
    fact_of: dict[str, str] = {}
    for cand in _round_robin(results, lambda c: c["metadata"]["task"] in ("qa", "skill")):
        question = cand["metadata"].get("question") or cand["messages"][1]["content"]
        if cand["metadata"].get("context"):  # grounded: the same question about another passage is new
            question = _grounded_text(cand["metadata"]["context"], question)
        hit = index.match(question)
        if hit is not None and not _cloze_sibling(cand, hit[0], fact_of):
            kind = hit[0].split(":", 1)[0] if hit[0].startswith(("seed:", "eval:")) else "generated"
            acc.duplicates += 1
            rejects.append({"leaf": leaf.name, "stage": "dedup", "reason": f"near_{kind}", "text": question,
                            "similar_to": hit[0], "similarity": round(hit[1], 3), "sample_id": cand["id"]})
            continue
        index.add(cand["id"], question)
        unique.append(cand)
        if cand["metadata"].get("fact_ids"):
            fact_of[cand["id"]] = cand["metadata"]["fact_ids"][0]

    split, parts = split_leaf(leaf, results, unique, cfg)
    cap = max(cfg.samples_per_leaf, sum(1 for c in unique if c["metadata"].get("fact_ids")))
    evals: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for cand in unique:
        meta = cand["metadata"]
        if parts[cand["id"]] != TRAIN:
            item = _eval_item(leaf, meta.get("question") or cand["messages"][1]["content"], cand["messages"][2]["content"],
                              meta.get("context"), meta.get("seed") if isinstance(meta.get("seed"), int) else -1,
                              {"sample_id": cand["id"], "chunk_id": meta.get("chunk_id"), "scores": meta.get("scores"),
                               "group": group_of(cand), "split": parts[cand["id"]]}, source="generated")
            evals.append(item.to_json())
            continue
        if len(kept) >= cap:
            acc.reject("select", "over_target")
            rejects.append({"leaf": leaf.name, "stage": "select", "reason": "over_target",
                            "text": meta.get("question", ""), "sample_id": cand["id"]})
            continue
        kept.append(cand)
    acc.eval_generated = len(evals)
    acc.eval_items = len(plan.eval_items) + len(evals)
    acc.split = split.to_json()
    for r in results:  # auxiliary tasks (summaries, facts) of held-out chunks are not trained on either
        kept.extend(c for c in r.candidates
                    if c["metadata"]["task"] not in ("qa", "skill") and split.part(group_of(c)) == TRAIN)
    acc.kept = len(kept)
    acc.by_task.update(c["metadata"]["task"] for c in kept)
    return kept, rejects, evals

