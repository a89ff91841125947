"""The dry-run estimate of a run: teacher calls and tokens per leaf, samples and steps per phase, an ETA.

`estimate_run` returns the numbers as data (`RunEstimate`); `graft run --dry-run` prints them. Stage
times come from a float32 matmul micro-benchmark of this machine and are calibrated by earlier runs:
after each stage `graft run` stores measured wall time over estimated time (`store_calibration`), and
later estimates on the same machine, teacher and student use those ratios.

The estimate never writes anything and never fetches documents: a knowledge leaf whose documents are
not in the clone cache yet is estimated from its seed contexts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from graftlm.artifacts import MANIFEST, hash_obj, read_json, read_manifest, write_json
from graftlm.config import GenerateConfig, Recipe
from graftlm.errors import GraftError
from graftlm.generate.coverage import CoverageEstimate, estimate_coverage
from graftlm.generate.pipeline import candidates_per_leaf
from graftlm.taxonomy.model import Leaf

log = logging.getLogger(__name__)

CALIBRATION_FILE = "speeds.json"
"""Per machine and model: measured wall time over estimated time of each stage, from earlier runs."""

GENERATE_PROMPT_TOKENS = 300
"""Tokens of a generation prompt's instructions (questions, answers, contexts), before examples and chunk."""
JUDGE_PROMPT_TOKENS = 250
"""Tokens of a judging prompt's instructions (question and knowledge-answer checks)."""
RATING_PROMPT_TOKENS = 350
"""Tokens of the pair-rating prompt (instructions, question and answer)."""
AUX_PROMPT_TOKENS = 200
"""Tokens of an auxiliary knowledge task's instructions (summaries, atomic facts), before the chunk."""
FALLBACK_PARAMS = 135_000_000
"""Parameters assumed for a model whose size cannot be read (SmolLM2-135M, the embedded default)."""
WORDS_TO_TOKENS = 1.3
"""Tokens per English word, for estimates from text."""
REMOTE_TOKENS_PER_S = 1000.0
"""Generated tokens per second assumed of a remote teacher (prompt tokens at 20x that)."""
FAKE_CALL_S = 0.002
"""Seconds per call of the in-package fake teacher."""


@dataclass
class LeafEstimate:
    name: str
    type: str
    seeds: int
    chunks: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    samples: int = 0
    eval_items: int = 0
    coverage: CoverageEstimate | None = None
    """Knowledge leaves with facts: estimated facts and views (`graftlm.generate.coverage`)."""


@dataclass
class RunEstimate:
    leaves: list[LeafEstimate]
    phases: list[tuple[str, int, int, int]]
    """(phase, samples, optimizer steps, tokens per epoch)"""
    stage_s: dict[str, float]
    """Estimated seconds per stage (before calibration)."""
    calibration: dict[str, float]
    speed_note: str
    samples_source: str
    gflops: float = 0.0
    """The benchmark speed the stage estimates were made with."""

    @property
    def teacher_calls(self) -> int:
        return sum(leaf.calls for leaf in self.leaves)

    @property
    def tokens(self) -> int:
        return sum(leaf.prompt_tokens + leaf.completion_tokens for leaf in self.leaves)

    def stage_eta_s(self, name: str) -> float:
        """Calibrated seconds of one stage."""
        return self.stage_s.get(name, 0.0) * self.calibration.get(name, 1.0)

    def eta_s(self, running: Iterable[str]) -> float:
        """Calibrated seconds of the stages that would run."""
        return sum(self.stage_eta_s(name) for name in running)


def _words(text: str) -> int:
    return len(text.split())


def _leaf_document_texts(leaf: Leaf, chunk_tokens: int) -> tuple[list[str], int]:
    """(texts, chunks) of a knowledge leaf's documents when already fetched: the chunk texts and their
    count. Else estimated from the seed contexts, taken as a third of the documents (a real run fetches
    them and reports document errors properly)."""
    try:
        from graftlm.generate.chunking import chunk_text
        from graftlm.taxonomy.documents import load_leaf_documents

        docs = load_leaf_documents(leaf, fetch=False)
        texts = [c for d in docs for c in chunk_text(d.text, chunk_tokens)]
        return texts, len(texts)
    except Exception as e:  # the plan is advisory
        log.info("plan: documents of %s not read (%s); estimating from seeds", leaf.name, e)
        texts = [s.context for s in leaf.knowledge_seeds] * 3
        words = sum(_words(t) for t in texts)
        return texts, max(1, round(words * WORDS_TO_TOKENS / chunk_tokens))


def _facts_calls(g: GenerateConfig, facts: int, chunks: int, gen_out: int,
                 judge_out: int) -> list[tuple[int, int, int]]:
    """Teacher calls (count, prompt tokens, completion tokens each) of a knowledge leaf in facts mode: the
    facts (`teacher`), one request per fact and view kind, the chunk views, and their judging."""
    from graftlm.generate.views import QUESTION_SAMPLES, QUESTION_TOKENS

    v, chunk_tok = g.views, g.chunk_tokens
    calls = [(chunks if g.facts == "teacher" else 0, GENERATE_PROMPT_TOKENS + chunk_tok, gen_out),
             (facts * sum(1 for n in (v.qa, v.reverse_qa, v.paraphrase) if n), GENERATE_PROMPT_TOKENS, gen_out),
             (facts if v.question else 0, GENERATE_PROMPT_TOKENS, QUESTION_SAMPLES * v.question * QUESTION_TOKENS),
             (chunks * (v.relations + len(v.rewrites)), GENERATE_PROMPT_TOKENS + chunk_tok, gen_out)]
    if g.judge_knowledge:
        calls.append((facts * (v.qa + v.question + v.reverse_qa) + chunks * v.relations,
                      JUDGE_PROMPT_TOKENS + chunk_tok, judge_out))
    return [c for c in calls if c[0]]


def estimate_leaf(leaf: Leaf, recipe: Recipe) -> LeafEstimate:
    """Teacher calls, tokens, kept samples and eval items of one leaf, from the generate config."""
    g = recipe.generate
    target = g.samples_per_leaf
    cands = candidates_per_leaf(g)
    seeds = len(leaf.skill_seeds) or len(leaf.knowledge_seeds)
    est = LeafEstimate(leaf.name, leaf.type.value, seeds)
    seed_words = sum(_words(s.question + s.answer + (s.context or "")) for s in leaf.skill_seeds)
    seed_words += sum(_words(s.context) + sum(_words(q.question + q.answer) for q in s.qas)
                      for s in leaf.knowledge_seeds)
    example_tokens = int(WORDS_TO_TOKENS * seed_words / max(1, seeds)) * (g.seeds_per_chunk if leaf.is_knowledge else 3)
    gen_out, judge_out = g.max_tokens // 2, g.judge_max_tokens // 2
    calls: list[tuple[int, int, int]] = []  # (count, prompt tokens each, completion tokens each)
    share = g.eval_generated_share
    if leaf.is_knowledge:
        texts, chunks = _leaf_document_texts(leaf, g.chunk_tokens)
        est.chunks = chunks
        est.coverage = estimate_coverage(texts, chunks, g)
        chunk_tok = g.chunk_tokens
        if est.coverage is None:  # facts: off, per-chunk Q&A
            calls.append((math.ceil(cands / g.qa_per_call), GENERATE_PROMPT_TOKENS + example_tokens + chunk_tok,
                          gen_out))
            if g.judge_knowledge:
                calls.append((cands, JUDGE_PROMPT_TOKENS + chunk_tok, judge_out))
            est.samples = int(target * (1 - share))
        else:
            calls.extend(_facts_calls(g, est.coverage.facts, chunks, gen_out, judge_out))
            v, facts = g.views, est.coverage.facts
            qa = max(target, facts * v.qa_per_fact)  # every fact view is kept
            est.samples = int((qa + facts * v.paraphrase + chunks * (v.relations + len(v.rewrites))) * (1 - share))
        calls.append((chunks * len(g.aux_tasks), AUX_PROMPT_TOKENS + chunk_tok, gen_out))
        est.samples += chunks * len(g.aux_tasks)
        est.eval_items = len(leaf.knowledge_seeds) * g.eval_qas_per_seed + int(target * share)
    else:
        if leaf.type.value == "grounded_skill":
            contexts = math.ceil(cands / g.questions_per_context)
            calls.append((contexts, GENERATE_PROMPT_TOKENS + example_tokens, gen_out))
            calls.append((contexts, GENERATE_PROMPT_TOKENS + example_tokens, gen_out))
        else:
            calls.append((math.ceil(cands / g.questions_per_call), GENERATE_PROMPT_TOKENS + example_tokens, gen_out))
        if g.judge_questions:
            calls.append((cands, JUDGE_PROMPT_TOKENS, judge_out))
        calls.append((cands, JUDGE_PROMPT_TOKENS + example_tokens, gen_out))
        if g.rate_pairs:
            calls.append((cands, RATING_PROMPT_TOKENS, judge_out))
        est.samples = int(target * (1 - share))
        est.eval_items = g.eval_seeds_per_leaf + int(target * share)
    est.calls = sum(c[0] for c in calls)
    est.prompt_tokens = sum(c[0] * c[1] for c in calls)
    est.completion_tokens = sum(c[0] * c[2] for c in calls)
    if recipe.eval.max_items_per_leaf is not None:
        est.eval_items = min(est.eval_items, recipe.eval.max_items_per_leaf)
    return est


def _phase_samples(out: Path, recipe: Recipe, leaves: list[LeafEstimate]) -> tuple[list[tuple[str, int, int]], str]:
    """[(phase, samples, average tokens a sample)] from the mix manifest, the generated data, or estimates."""
    mix = read_manifest(out / "mix")
    gen_train = out / "generate" / "train.jsonl"
    if mix is not None or (out / "generate" / MANIFEST).is_file() and gen_train.is_file():
        try:
            from graftlm.mix import build_phases, read_samples

            samples = read_samples(gen_train)
            phases, _ = build_phases(samples, recipe.mix, [])
            rows = []
            for p in phases:
                words = sum(_words(m.get("content", "")) for s in p.samples for m in s.messages)
                rows.append((p.name, len(p.samples), int(WORDS_TO_TOKENS * words / max(1, len(p.samples))) + 20))
            return rows, "generated data"
        except Exception as e:
            log.info("plan: cannot mix the generated data (%s); estimating", e)
    m = recipe.mix
    g = recipe.generate
    qa = sum(int(g.samples_per_leaf * (1 - g.eval_generated_share)) for le in leaves if le.type == "knowledge")
    aux = sum(le.chunks * len(g.aux_tasks) for le in leaves if le.type == "knowledge")
    skills = sum(le.samples for le in leaves if le.type != "knowledge")
    qa_tok, aux_tok, skill_tok = 110, int(g.chunk_tokens * 1.6) + 60, 160
    if m.strategy == "stacked":
        total = qa + aux + skills
        avg = (qa * qa_tok + aux * aux_tok + skills * skill_tok) // max(1, total)
        return [("stacked", total, avg)], "estimate"
    rows = []
    if qa:
        rows.append(("knowledge-1", qa, qa_tok))
    k2 = aux + int(qa * m.knowledge_2_replay) if aux else 0
    if k2:
        rows.append(("knowledge-2", k2, (aux * aux_tok + (k2 - aux) * qa_tok) // k2))
    if skills:
        replay = int((qa + aux) * m.skills_replay)
        n = skills + replay
        rows.append(("skills", n, (skills * skill_tok + replay * (qa_tok + aux_tok) // 2) // n))
    return rows, "estimate"


def param_count(spec: str) -> int:
    """Parameters of a local model, read from its safetensors headers or GGUF tensor table
    (`FALLBACK_PARAMS` when they cannot be read)."""
    from graftlm.models import resolve

    ref = resolve(spec)
    total = 0
    if ref.kind == "hf":
        for f in ref.path.glob("*.safetensors"):
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            for k, v in header.items():
                if k != "__metadata__":
                    total += math.prod(v["shape"])
        return total or FALLBACK_PARAMS
    try:
        from gguf import GGUFReader

        return int(sum(int(t.n_elements) for t in GGUFReader(str(ref.path)).tensors))
    except Exception:
        return FALLBACK_PARAMS


_GFLOPS: list[float] = []


def matmul_gflops() -> float:
    """A half-second float32 matmul micro-benchmark of this machine (GFLOP/s), measured once a process."""
    if _GFLOPS:
        return _GFLOPS[0]
    import torch

    a, b = torch.randn(512, 512), torch.randn(512, 512)
    torch.mm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.5:
        torch.mm(a, b)
        n += 1
    _GFLOPS.append(2 * 512**3 * n / (time.perf_counter() - start) / 1e9)
    return _GFLOPS[0]


def _machine_key(recipe: Recipe) -> str:
    import platform

    return hash_obj([platform.node(), platform.machine(), os.cpu_count(), recipe.teacher.model,
                     recipe.train.student, recipe.train.device])[:16]


def calibration(recipe: Recipe) -> dict[str, float]:
    """This machine's stored ratios (measured over estimated wall time) per stage, and the benchmark speed
    they were measured at (`gflops`); empty before the first run."""
    from graftlm.models import graft_home

    path = graft_home() / CALIBRATION_FILE
    try:
        data = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    entry = data.get(_machine_key(recipe), {}) if isinstance(data, dict) else {}
    return {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}


def store_calibration(recipe: Recipe, stage: str, wall_s: float, estimated_s: float, gflops: float) -> None:
    """Remember measured wall time over estimated time for a stage, relative to the benchmark speed of
    the machine's first calibration (so that later estimates at that speed predict wall times)."""
    from graftlm.models import graft_home

    path = graft_home() / CALIBRATION_FILE
    try:
        data = read_json(path) if path.is_file() else {}
        if not isinstance(data, dict):
            data = {}
        entry = data.setdefault(_machine_key(recipe), {})
        ref = float(entry.setdefault("gflops", round(gflops, 2)))
        entry[stage] = round(wall_s / estimated_s * ref / gflops, 4)
        write_json(path, data)
    except (OSError, ValueError) as e:
        log.info("cannot store speed calibration in %s: %s", path, e)


def estimate_run(recipe: Recipe, leaves: list[Leaf], out: Path) -> RunEstimate:
    """Teacher calls and tokens per leaf, samples and optimizer steps per phase, seconds per stage, for a
    run of `recipe` over `leaves` into the run directory `out` (whose finished stages refine the numbers)."""
    r = recipe
    leaf_estimates = [estimate_leaf(leaf, r) for leaf in leaves]
    phase_rows, source = _phase_samples(Path(out), r, leaf_estimates)
    phases = []
    train_tokens = 0
    for name, n, avg_tok in phase_rows:
        cfg = r.train.for_phase(name)
        steps = cfg.epochs * math.ceil(n / cfg.batch_size)
        phases.append((name, n, steps, n * avg_tok))
        train_tokens += cfg.epochs * n * avg_tok

    cal = calibration(r)
    # With a calibration, estimate at the benchmark speed it was measured with: the ETA then follows the
    # wall times measured on this machine instead of a noisy benchmark on a busy machine.
    gflops = cal.pop("gflops", None) or matmul_gflops()
    teacher = r.teacher.model
    stage_s: dict[str, float] = {"validate": 1.0}
    prompt_tok = sum(le.prompt_tokens for le in leaf_estimates)
    compl_tok = sum(le.completion_tokens for le in leaf_estimates)
    if teacher.is_fake:
        stage_s["generate"] = FAKE_CALL_S * sum(le.calls for le in leaf_estimates)
        note = "fake teacher"
    elif teacher.is_local:
        p_teacher = param_count(teacher)
        prefill = gflops * 1e9 * 0.3 / (2 * p_teacher)
        batch = min(r.teacher.max_in_flight, 32)
        decode = batch * gflops * 1e9 * 0.05 / (2 * p_teacher)
        stage_s["generate"] = prompt_tok / prefill + compl_tok / decode
        note = f"local teacher, {p_teacher / 1e6:.0f}M parameters"
    else:
        stage_s["generate"] = compl_tok / REMOTE_TOKENS_PER_S + prompt_tok / (20 * REMOTE_TOKENS_PER_S)
        note = f"remote teacher assumed at {REMOTE_TOKENS_PER_S:,.0f} generated tokens/s"
    stage_s["mix"] = 1.0
    try:
        p_student = param_count(r.train.student)
    except GraftError:
        p_student = FALLBACK_PARAMS
    train_tps = gflops * 1e9 * 0.9 / (6 * p_student)  # measured: SmolLM2-135M full fine-tune on 2 cores
    stage_s["train"] = train_tokens / train_tps + 5.0 * len(phases)
    items = sum(le.eval_items for le in leaf_estimates)
    gen_tps = gflops * 1e9 * 0.05 / (2 * p_student)
    e = r.eval
    mt_bench = e.mt_bench_for(_eval_device(e.device))
    answers = 2 * items * e.max_new_tokens * 0.6 + 2 * mt_bench * 2 * e.max_new_tokens * 0.6
    judge_calls = (2 * items + 4 * mt_bench) if e.use_judge else 0
    judge_local = r.judge_or_teacher.model.is_local
    stage_s["eval"] = answers / gen_tps + judge_calls * (e.judge_max_tokens * 0.5 / gen_tps if judge_local else FAKE_CALL_S)
    stage_s["report"] = 3.0
    note += f"; this machine: {gflops:.0f} GFLOP/s float32 matmul"
    if cal:
        note += "; ETA calibrated by earlier runs on this machine"
    return RunEstimate(leaf_estimates, phases, stage_s, cal, note, source, gflops)


def _eval_device(device: str) -> str:
    from graftlm.models import pick_device

    try:
        return pick_device(device)
    except GraftError:
        return "cpu"
