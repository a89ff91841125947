"""The whole pipeline as resumable stages: validate, generate, mix, train, eval, report.

This is the only module that knows the order of the stages. Each stage writes its own folder in the
run directory with `manifest.json` last; `run.json` beside them records, for each finished stage, the
hash of its inputs (its recipe section plus the hashes of the stages it reads). A rerun skips every
stage whose recorded hash matches and whose manifest exists, so it resumes at the first unfinished
stage, and a changed recipe section reruns that stage and everything downstream of it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.artifacts import (
    MANIFEST,
    hash_file,
    hash_obj,
    read_json,
    read_manifest,
    stable_json,
    write_json,
    write_manifest,
)
from graftlm.config import Recipe
from graftlm.errors import (
    ConfigError,
    DocumentError,
    GraftError,
    InputError,
    ModelError,
    StageError,
    TaxonomyError,
)
from graftlm.taxonomy.model import Leaf

log = logging.getLogger(__name__)

# --- local document repositories ---------------------------------------------------------------

DOCS_REPO_SUFFIX = "-repo"
"""A missing local document repository `NAME-repo` is built from the sibling folder `NAME/`."""

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "graftlm examples",
    "GIT_AUTHOR_EMAIL": "examples@graftlm.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "graftlm examples",
    "GIT_COMMITTER_EMAIL": "examples@graftlm.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, **_GIT_IDENTITY}
    try:
        done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args],
                              cwd=cwd, env=env, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise DocumentError("git is not installed", hint="install git (e.g. `apt-get install git`)") from None
    except subprocess.CalledProcessError as e:
        raise DocumentError(f"git {' '.join(args)} failed in {cwd}: {e.stderr.strip()}") from None
    return done.stdout.strip()


def build_docs_repo(source: Path, repo: Path) -> str:
    """Commit every file under `source` into a new git repository at `repo` and return the commit SHA.

    Author, committer, dates and message are fixed, so the same files always give the same SHA (the
    one a qna.yaml's `document.commit` names). An existing repository is left as it is."""
    source, repo = Path(source), Path(repo)
    if (repo / ".git").exists():
        return _git(["rev-parse", "HEAD"], repo)
    if not source.is_dir():
        raise DocumentError(f"cannot build document repository {repo}: source folder {source} not found")
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=repo.parent, prefix=f".{repo.name}."))
    try:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                dest = tmp / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())  # plain 0644 files: the tree hash does not depend on modes
                dest.chmod(0o644)
        _git(["init", "-q", "-b", "main"], tmp)
        _git(["add", "-A"], tmp)
        _git(["commit", "-q", "-m", f"Documents from {source.name}"], tmp)
        sha = _git(["rev-parse", "HEAD"], tmp)
        os.replace(tmp, repo)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sha


def prepare_local_documents(taxonomy: Path) -> list[Path]:
    """Build the missing local document repositories that knowledge leaves of `taxonomy` name.

    A leaf's `document.repo` that is a local path ending in `-repo` and does not exist yet is built
    from the sibling folder without the suffix (see `build_docs_repo`). Returns the repositories built."""
    import yaml

    built: list[Path] = []
    root = Path(taxonomy)
    for qna in sorted((root / "knowledge").rglob("qna.yaml")) if (root / "knowledge").is_dir() else []:
        try:
            data = yaml.safe_load(qna.read_text(encoding="utf-8"))
            repo_spec = str(data["document"]["repo"])
        except Exception:
            continue  # validation reports broken files with their line numbers
        if "://" in repo_spec or repo_spec.startswith("git@") or not repo_spec.endswith(DOCS_REPO_SUFFIX):
            continue
        repo = Path(repo_spec).expanduser()
        if not repo.is_absolute():
            repo = (qna.parent / repo).resolve()
        source = repo.with_name(repo.name[: -len(DOCS_REPO_SUFFIX)])
        if not repo.exists() and source.is_dir():
            build_docs_repo(source, repo)
            built.append(repo)
    return built


# --- the pipeline ------------------------------------------------------------------------------

STAGES = ("validate", "generate", "mix", "train", "eval", "report")
STATE_FILE = "run.json"
"""Per-stage input hashes, status and wall times of a run directory (written after each stage)."""


@dataclass
class StagePlan:
    """One stage of a run: its folder, the hash of its inputs (None while an upstream stage must run
    first) and whether it would run."""

    name: str
    folder: Path
    input_hash: str | None
    runs: bool
    reason: str


@dataclass
class RunContext:
    taxonomy: Path
    recipe: Recipe
    out: Path
    leaves: list[Leaf] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def stage_folder(out: Path, name: str) -> Path:
    return Path(out) / name


def _manifest_hash(folder: Path) -> str | None:
    path = folder / MANIFEST
    return hash_file(path) if path.is_file() else None


def taxonomy_hash(taxonomy: Path, leaves: list[Leaf]) -> str:
    """Hash of every selected leaf's name and qna.yaml bytes (documents are pinned by their commit)."""
    return hash_obj([[leaf.name, hash_file(leaf.path)] for leaf in leaves])


def stage_inputs(name: str, ctx: RunContext) -> Any | None:
    """What a stage's input hash covers: its recipe sections and the manifests of the stages it reads.
    None when an upstream manifest is missing (the upstream stage must run first)."""
    r, out = ctx.recipe, ctx.out
    ups = {"generate": ("validate",), "mix": ("generate",), "train": ("mix", "generate"),
           "eval": ("train", "generate"), "report": ("generate", "train", "eval")}.get(name, ())
    hashes = {up: _manifest_hash(stage_folder(out, up)) for up in ups}
    if any(h is None for h in hashes.values()):
        return None
    if name == "validate":
        return {"taxonomy": taxonomy_hash(ctx.taxonomy, ctx.leaves), "leaves": [leaf.name for leaf in ctx.leaves]}
    if name == "generate":
        return {**hashes, "teacher": r.teacher, "judge": r.judge_or_teacher, "generate": r.generate}
    if name == "mix":
        extra = [hash_file(Path(e.path)) if Path(e.path).is_file() else None for e in r.mix.extra]
        return {**hashes, "mix": r.mix, "extra": extra}
    if name == "train":
        # Checkpoint selection uses a few eval settings; the judge itself is left out on purpose, so
        # that changing the judge re-evaluates without retraining.
        sel = {"metric": r.eval.selection_metric, "items": r.eval.selection_items,
               "max_new_tokens": r.eval.max_new_tokens, "seed": r.eval.seed}
        return {**hashes, "train": r.train, "selection": sel}
    if name == "eval":
        return {**hashes, "eval": r.eval, "judge": r.judge_or_teacher, "base": r.train.student}
    return hashes


def plan_stages(ctx: RunContext) -> list[StagePlan]:
    """Which stages are up to date and which would run, in order. A stage whose upstream stage runs
    always runs too (its input hash is only known once the upstream manifest exists)."""
    plans: list[StagePlan] = []
    upstream_runs = False
    for name in STAGES:
        folder = stage_folder(ctx.out, name)
        inputs = None if upstream_runs else stage_inputs(name, ctx)
        h = None if inputs is None else hash_obj(_jsonable(inputs))
        rec = ctx.state.get("stages", {}).get(name, {})
        if h is None:
            runs, reason = True, "after upstream stages"
        elif rec.get("input_hash") == h and rec.get("status") == "done" and (folder / MANIFEST).is_file():
            runs, reason = False, "up to date"
        elif rec.get("input_hash") == h:
            runs, reason = True, "resume unfinished"
        elif rec:
            runs, reason = True, "inputs changed"
        else:
            runs, reason = True, "not run yet"
        upstream_runs = upstream_runs or runs
        plans.append(StagePlan(name, folder, h, runs, reason))
    return plans


def _jsonable(obj: Any) -> Any:
    """Config sections as their non-default values only: a graftlm upgrade that adds a field with a
    default leaves existing runs up to date."""
    from pydantic import BaseModel

    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude_defaults=True)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _load_state(out: Path) -> dict[str, Any]:
    path = Path(out) / STATE_FILE
    if not path.is_file():
        return {"stages": {}}
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {"stages": {}}
    return data if isinstance(data, dict) and isinstance(data.get("stages"), dict) else {"stages": {}}


def _save_state(ctx: RunContext) -> None:
    write_json(ctx.out / STATE_FILE, ctx.state)


def _clear_stage(plan: StagePlan, ctx: RunContext) -> None:
    """Make room for a stage whose inputs changed (or that has no record): delete its old output. The
    generate stage keeps its teacher call cache, which is keyed by the request itself."""
    rec = ctx.state.get("stages", {}).get(plan.name, {})
    if rec.get("input_hash") == plan.input_hash or not plan.folder.exists():
        return  # same inputs: leave the unfinished work for the stage to resume
    log.info("%s: inputs changed, clearing %s", plan.name, plan.folder)
    if plan.name == "generate":
        for child in plan.folder.iterdir():
            if child.name.startswith("calls.sqlite"):
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    else:
        shutil.rmtree(plan.folder)


def _read_manifest_or_fail(folder: Path, stage: str) -> dict[str, Any]:
    manifest = read_manifest(folder)
    if manifest is None:
        raise StageError(f"stage {stage} finished without writing {folder / MANIFEST}",
                         hint=f"delete {folder} and rerun to redo the stage")
    return manifest


def _run_stage(name: str, ctx: RunContext) -> None:
    """Call one stage's entry point; each writes its folder with manifest.json last."""
    r, out = ctx.recipe, ctx.out
    folder = stage_folder(out, name)
    if name == "validate":
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(folder, {
            "taxonomy": str(ctx.taxonomy),
            "taxonomy_hash": taxonomy_hash(ctx.taxonomy, ctx.leaves),
            "leaves": [{"name": leaf.name, "type": leaf.type.value, "path": str(leaf.path),
                        "seeds": len(leaf.skill_seeds) or len(leaf.knowledge_seeds)} for leaf in ctx.leaves],
        })
    elif name == "generate":
        from graftlm.generate.run import run_generate

        run_generate(ctx.taxonomy, folder, r, leaves=ctx.leaves)
    elif name == "mix":
        from graftlm.mix import run_mix

        run_mix(stage_folder(out, "generate"), folder, r.mix)
    elif name == "train":
        from graftlm.evaluate.selection import make_scorer
        from graftlm.train.run import run_train

        scorer = make_scorer(stage_folder(out, "generate"), r)
        run_train(stage_folder(out, "mix"), folder, r, scorer=scorer)
    elif name == "eval":
        from graftlm.evaluate.run import run_eval

        train = _read_manifest_or_fail(stage_folder(out, "train"), "train")
        final = train.get("final_model")
        if not final:
            raise StageError(f"{stage_folder(out, 'train') / MANIFEST} names no final_model",
                             hint="delete the train folder and rerun")
        run_eval(str(final), stage_folder(out, "generate"), folder, r,
                 base_model=str(train.get("base_model") or r.train.student))
    elif name == "report":
        from graftlm.report import run_report

        run_report(out, folder)
    _read_manifest_or_fail(folder, name)


def load_run_context(taxonomy: Path, recipe_path: Path, out: Path, *,
                     overrides: dict[str, Any] | None = None) -> RunContext:
    """Load and check everything a run needs before any teacher call: the recipe, the taxonomy (its
    local document repositories built when missing), the models named by the recipe."""
    from graftlm.config import load_recipe
    from graftlm.evaluate.exam import check_exam_config
    from graftlm.taxonomy.load import load_taxonomy

    recipe = load_recipe(recipe_path, overrides)
    taxonomy = Path(taxonomy)
    if not taxonomy.is_dir():
        raise InputError(f"taxonomy folder not found: {taxonomy}",
                         hint="pass the root of a taxonomy (the folder holding knowledge/ and compositional_skills/)")
    prepare_local_documents(taxonomy)
    leaves = load_taxonomy(taxonomy)
    if not leaves:
        raise TaxonomyError(f"{taxonomy} has no leaves (no qna.yaml under knowledge/, compositional_skills/ "
                            "or foundational_skills/)", hint="pass the root of an InstructLab taxonomy")
    check_models(recipe)
    check_exam_config(recipe.eval.questions, recipe.eval.documents)
    out = Path(out)
    return RunContext(taxonomy, recipe, out, leaves, _load_state(out))


def check_models(recipe: Recipe) -> None:
    """Fail early when a local model named by the recipe does not exist (HTTP endpoints and `fake` pass)."""
    from graftlm.models import resolve

    specs = [("train.student", recipe.train.student), ("teacher.model", recipe.teacher.model)]
    if recipe.judge is not None:
        specs.append(("judge.model", recipe.judge.model))
    for key, spec in specs:
        if spec.strip() == "fake" or spec.strip().startswith(("http://", "https://")):
            continue
        try:
            resolve(spec)
        except ModelError as e:
            raise ConfigError(f"{key}: {e.message}", hint=e.hint) from None


def run_pipeline(taxonomy: Path, recipe_path: Path, out: Path, *, dry_run: bool = False,
                 overrides: dict[str, Any] | None = None) -> Path:
    """Run every stage that is not up to date, in order; return the run directory.

    With `dry_run`, print the plan (stages, leaves, teacher calls, samples, steps, ETA) and run nothing."""
    ctx = load_run_context(Path(taxonomy), Path(recipe_path), Path(out), overrides=overrides)
    plans = plan_stages(ctx)
    if dry_run:
        print(format_plan(estimate_run(ctx, plans), plans))
        return ctx.out
    ctx.out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) != 0:
        _train_only(ctx)
        return ctx.out
    with _run_lock(ctx.out):
        write_json(ctx.out / "recipe.json", ctx.recipe.model_dump(mode="json"))
        for name in STAGES:
            plan = next(p for p in plan_stages(ctx) if p.name == name)
            if not plan.runs:
                _say(f"[{name}] up to date")
                continue
            assert plan.input_hash is not None  # upstream manifests exist once upstream stages ran
            _clear_stage(plan, ctx)
            _say(f"[{name}] running ({plan.reason})")
            stages = ctx.state.setdefault("stages", {})
            resuming = plan.reason == "resume unfinished"
            prev_wall = float(stages.get(name, {}).get("wall_s", 0.0)) if resuming else 0.0
            prev_cpu = float(stages.get(name, {}).get("cpu_s", 0.0)) if resuming else 0.0
            stages[name] = {"input_hash": plan.input_hash, "status": "running", "wall_s": prev_wall, "cpu_s": prev_cpu}
            _save_state(ctx)
            estimated = _stage_estimate(ctx, name)
            start, cpu_start = time.perf_counter(), _cpu_s()
            try:
                _run_stage(name, ctx)
            finally:
                stages[name]["wall_s"] = round(prev_wall + time.perf_counter() - start, 2)
                stages[name]["cpu_s"] = round(prev_cpu + _cpu_s() - cpu_start, 2)
                _save_state(ctx)
            stages[name]["status"] = "done"
            _save_state(ctx)
            if estimated and not prev_wall and stages[name]["wall_s"] > 2:
                _store_calibration(ctx.recipe, name, stages[name]["wall_s"], *estimated)
            _say(f"[{name}] done in {stages[name]['wall_s']:.0f} s")
    return ctx.out


def _train_only(ctx: RunContext, poll_s: float = 2.0) -> None:
    """A non-zero torchrun rank: wait until rank 0 starts the train stage, join it, and leave the other
    stages to rank 0. Rank 0 and this rank agree on the stage through its input hash."""
    while True:
        ctx.state = _load_state(ctx.out)
        plan = next(p for p in plan_stages(ctx) if p.name == "train")
        rec = ctx.state.get("stages", {}).get("train", {})
        if plan.input_hash is not None and rec.get("input_hash") == plan.input_hash:
            if rec.get("status") == "done":
                return
            if rec.get("status") == "running":
                break
        time.sleep(poll_s)
    from graftlm.evaluate.selection import make_scorer
    from graftlm.train.run import run_train

    run_train(stage_folder(ctx.out, "mix"), stage_folder(ctx.out, "train"), ctx.recipe,
              scorer=make_scorer(stage_folder(ctx.out, "generate"), ctx.recipe))


def _stage_estimate(ctx: RunContext, name: str) -> tuple[float, float] | None:
    """(estimated seconds, benchmark GFLOP/s used) of one stage, to calibrate later ETAs against its
    measured wall time."""
    if name in ("validate", "mix", "report"):
        return None
    try:
        est = estimate_run(ctx)
    except Exception as e:  # an estimate must never stop a run
        log.info("no estimate for %s: %s", name, e)
        return None
    seconds = est.stage_s.get(name)
    return (seconds, est.gflops) if seconds else None


def _cpu_s() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """One `graft run` per run directory at a time."""
    import fcntl

    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StageError(f"another `graft run` is using {out}",
                             hint="wait for it to finish, or pass another --out") from None
        yield


# --- dry-run plan: teacher calls, samples, steps and an ETA ----------------------------------------

CALIBRATION_FILE = "speeds.json"
"""Per machine and model: measured wall time over estimated time of each stage, from earlier runs."""


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

    def eta_s(self, plans: list[StagePlan]) -> float:
        return sum(self.stage_s.get(p.name, 0.0) * self.calibration.get(p.name, 1.0) for p in plans if p.runs)


def _words(text: str) -> int:
    return len(text.split())


def _leaf_documents_words(leaf: Leaf, chunk_tokens: int) -> tuple[int, int]:
    """(chunks, words) of a knowledge leaf's documents; (seed contexts as a stand-in) if unreadable."""
    try:
        from graftlm.generate.chunking import chunk_text
        from graftlm.taxonomy.documents import load_leaf_documents

        docs = load_leaf_documents(leaf)
        chunks = sum(len(chunk_text(d.text, chunk_tokens)) for d in docs)
        return chunks, sum(_words(d.text) for d in docs)
    except Exception as e:  # the plan is advisory: a real run reports document errors properly
        log.info("plan: documents of %s not read (%s); estimating from seeds", leaf.name, e)
        words = sum(_words(s.context) for s in leaf.knowledge_seeds) * 3
        return max(1, round(words * 1.3 / chunk_tokens)), words


def estimate_leaf(leaf: Leaf, recipe: Recipe) -> LeafEstimate:
    """Teacher calls, tokens, kept samples and eval items of one leaf, from the generate config."""
    g = recipe.generate
    target = g.samples_per_leaf
    cands = -(-int(target * g.oversample) // 1)
    seeds = len(leaf.skill_seeds) or len(leaf.knowledge_seeds)
    est = LeafEstimate(leaf.name, leaf.type.value, seeds)
    seed_words = sum(_words(s.question + s.answer + (s.context or "")) for s in leaf.skill_seeds)
    seed_words += sum(_words(s.context) + sum(_words(q.question + q.answer) for q in s.qas)
                      for s in leaf.knowledge_seeds)
    example_tokens = int(1.3 * seed_words / max(1, seeds)) * (g.seeds_per_chunk if leaf.is_knowledge else 3)
    gen_out, judge_out = g.max_tokens // 2, g.judge_max_tokens // 2
    calls: list[tuple[int, int, int]] = []  # (count, prompt tokens each, completion tokens each)
    share = g.eval_generated_share
    if leaf.is_knowledge:
        chunks, _ = _leaf_documents_words(leaf, g.chunk_tokens)
        est.chunks = chunks
        chunk_tok = g.chunk_tokens
        calls.append((-(-cands // g.qa_per_call), 300 + example_tokens + chunk_tok, gen_out))
        if g.judge_knowledge:
            calls.append((cands, 250 + chunk_tok, judge_out))
        calls.append((chunks * len(g.aux_tasks), 200 + chunk_tok, gen_out))
        est.samples = int(target * (1 - share)) + chunks * len(g.aux_tasks)
        est.eval_items = len(leaf.knowledge_seeds) * g.eval_qas_per_seed + int(target * share)
    else:
        if leaf.type.value == "grounded_skill":
            contexts = -(-cands // g.questions_per_context)
            calls.append((contexts, 300 + example_tokens, gen_out))
            calls.append((contexts, 300 + example_tokens, gen_out))
        else:
            calls.append((-(-cands // g.questions_per_call), 300 + example_tokens, gen_out))
        if g.judge_questions:
            calls.append((cands, 250, judge_out))
        calls.append((cands, 250 + example_tokens, gen_out))
        if getattr(g, "rate_pairs", True):
            calls.append((cands, 350, judge_out))
        est.samples = int(target * (1 - share))
        est.eval_items = g.eval_seeds_per_leaf + int(target * share)
    est.calls = sum(c[0] for c in calls)
    est.prompt_tokens = sum(c[0] * c[1] for c in calls)
    est.completion_tokens = sum(c[0] * c[2] for c in calls)
    if recipe.eval.max_items_per_leaf is not None:
        est.eval_items = min(est.eval_items, recipe.eval.max_items_per_leaf)
    return est


def _phase_samples(ctx: RunContext, leaves: list[LeafEstimate]) -> tuple[list[tuple[str, int, int]], str]:
    """[(phase, samples, average tokens a sample)] from the mix manifest, the generated data, or estimates."""
    out = ctx.out
    mix = read_manifest(stage_folder(out, "mix"))
    gen_train = stage_folder(out, "generate") / "train.jsonl"
    if mix is not None or (stage_folder(out, "generate") / MANIFEST).is_file() and gen_train.is_file():
        try:
            from graftlm.mix import build_phases, read_samples

            samples = read_samples(gen_train)
            phases, _ = build_phases(samples, ctx.recipe.mix, [])
            rows = []
            for p in phases:
                words = sum(_words(m.get("content", "")) for s in p.samples for m in s.messages)
                rows.append((p.name, len(p.samples), int(1.3 * words / max(1, len(p.samples))) + 20))
            return rows, "generated data"
        except Exception as e:
            log.info("plan: cannot mix the generated data (%s); estimating", e)
    m = ctx.recipe.mix
    g = ctx.recipe.generate
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


def _param_count(spec: str) -> int:
    """Parameters of a local model, read from its safetensors headers or GGUF tensor table."""
    import json
    import struct

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
                    size = 1
                    for d in v["shape"]:
                        size *= d
                    total += size
        return total or 135_000_000
    try:
        from gguf import GGUFReader

        return int(sum(int(t.n_elements) for t in GGUFReader(str(ref.path)).tensors))
    except Exception:
        return 135_000_000


_GFLOPS: list[float] = []


def _matmul_gflops() -> float:
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


def _calibration(recipe: Recipe) -> dict[str, float]:
    from graftlm.models import graft_home

    path = graft_home() / CALIBRATION_FILE
    try:
        data = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    entry = data.get(_machine_key(recipe), {}) if isinstance(data, dict) else {}
    return {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}


def _store_calibration(recipe: Recipe, stage: str, wall_s: float, estimated_s: float, gflops: float) -> None:
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


def estimate_run(ctx: RunContext, plans: list[StagePlan] | None = None) -> RunEstimate:
    """Teacher calls and tokens per leaf, samples and optimizer steps per phase, seconds per stage."""
    r = ctx.recipe
    leaves = [estimate_leaf(leaf, r) for leaf in ctx.leaves]
    phase_rows, source = _phase_samples(ctx, leaves)
    phases = []
    train_tokens = 0
    for name, n, avg_tok in phase_rows:
        cfg = r.train.for_phase(name)
        steps = cfg.epochs * -(-n // cfg.batch_size)
        phases.append((name, n, steps, n * avg_tok))
        train_tokens += cfg.epochs * n * avg_tok

    cal = _calibration(r)
    # With a calibration, estimate at the benchmark speed it was measured with: the ETA then follows the
    # wall times measured on this machine instead of a noisy benchmark on a busy machine.
    gflops = cal.pop("gflops", None) or _matmul_gflops()
    local = not r.teacher.model.strip().startswith(("http://", "https://")) and r.teacher.model.strip() != "fake"
    stage_s: dict[str, float] = {"validate": 1.0}
    prompt_tok = sum(le.prompt_tokens for le in leaves)
    compl_tok = sum(le.completion_tokens for le in leaves)
    if r.teacher.model.strip() == "fake":
        stage_s["generate"] = 0.002 * sum(le.calls for le in leaves)
        note = "fake teacher"
    elif local:
        p_teacher = _param_count(r.teacher.model)
        prefill = gflops * 1e9 * 0.3 / (2 * p_teacher)
        batch = min(r.teacher.max_in_flight, 32)
        decode = batch * gflops * 1e9 * 0.05 / (2 * p_teacher)
        stage_s["generate"] = prompt_tok / prefill + compl_tok / decode
        note = f"local teacher, {p_teacher / 1e6:.0f}M parameters"
    else:
        stage_s["generate"] = compl_tok / 1000.0 + prompt_tok / 20000.0
        note = "remote teacher assumed at 1,000 generated tokens/s"
    stage_s["mix"] = 1.0
    try:
        p_student = _param_count(r.train.student)
    except GraftError:
        p_student = 135_000_000
    train_tps = gflops * 1e9 * 0.9 / (6 * p_student)  # measured: SmolLM2-135M full fine-tune on 2 cores
    stage_s["train"] = train_tokens / train_tps + 5.0 * len(phases)
    items = sum(le.eval_items for le in leaves)
    gen_tps = gflops * 1e9 * 0.05 / (2 * p_student)
    answers = 2 * items * r.eval.max_new_tokens * 0.6 + 2 * r.eval.mt_bench_questions * 2 * r.eval.max_new_tokens * 0.6
    judge_calls = (2 * items + 4 * r.eval.mt_bench_questions) if r.eval.use_judge else 0
    stage_s["eval"] = answers / gen_tps + judge_calls * (0.002 if not local else r.eval.judge_max_tokens * 0.5 / gen_tps)
    stage_s["report"] = 3.0
    note += f"; this machine: {gflops:.0f} GFLOP/s float32 matmul"
    if cal:
        note += "; ETA calibrated by earlier runs on this machine"
    return RunEstimate(leaves, phases, stage_s, cal, note, source, gflops)


def _fmt_s(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(est: RunEstimate, plans: list[StagePlan]) -> str:
    """The `graft run --dry-run` text: stages, leaves, teacher calls and tokens, phases, ETA."""
    from graftlm.cli.common import format_table

    lines = ["Stages:"]
    lines.append(format_table(
        ["stage", "status", "estimated time"],
        [(p.name, ("run: " if p.runs else "skip: ") + p.reason,
          _fmt_s(est.stage_s.get(p.name, 0) * est.calibration.get(p.name, 1.0)) if p.runs else "-") for p in plans]))
    lines += ["", "Leaves (teacher calls and tokens are estimates):"]
    lines.append(format_table(
        ["leaf", "type", "seeds", "chunks", "teacher calls", "prompt tokens", "completion tokens", "samples", "eval items"],
        [(le.name, le.type, le.seeds, le.chunks or "-", le.calls, le.prompt_tokens, le.completion_tokens, le.samples,
          le.eval_items) for le in est.leaves]))
    lines.append(f"total: {est.teacher_calls} teacher calls, "
                 f"{sum(le.prompt_tokens + le.completion_tokens for le in est.leaves)} tokens")
    lines += ["", f"Training phases (samples from the {est.samples_source}):"]
    lines.append(format_table(["phase", "samples", "optimizer steps", "tokens per epoch"],
                              [(n, s, st, tok) for n, s, st, tok in est.phases]))
    lines += ["", f"ETA: {_fmt_s(est.eta_s(plans))} ({est.speed_note})"]
    return "\n".join(lines)


# --- export ------------------------------------------------------------------------------------

_TRAINING_STATE = ("optimizer", "scheduler", "rng", "trainer_state", "training_state", "train_state")


def final_model_path(run_dir: Path) -> Path:
    """The selected final model of a finished run (`train/manifest.json` `final_model`)."""
    train_dir = Path(run_dir) / "train"
    manifest = read_manifest(train_dir)
    if manifest is None or not manifest.get("final_model"):
        raise InputError(f"{run_dir} has no finished training ({train_dir / MANIFEST} missing or without final_model)",
                         hint=f"finish the run first: `graft run TAXONOMY --recipe RECIPE --out {run_dir}`")
    path = Path(str(manifest["final_model"]))
    if not path.is_absolute():
        path = train_dir / path
    elif not path.exists() and "train" in path.parts:  # the run directory was moved or copied
        parts = path.parts
        path = train_dir.joinpath(*parts[len(parts) - parts[::-1].index("train"):])
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise InputError(f"the final model {path} named by {train_dir / MANIFEST} is not a model folder",
                         hint="delete the train folder and rerun `graft run` to retrain")
    return path


def export_run(run_dir: Path, to: Path, *, force: bool = False) -> Path:
    """Write the run's selected final model to `to` as a Hugging Face folder (LoRA adapters merged),
    with a model card (README.md) listing the taxonomy leaves, data counts and evaluation table."""
    run_dir, to = Path(run_dir), Path(to)
    src = final_model_path(run_dir)
    if to.exists() and any(to.iterdir()) and not force:
        raise ConfigError(f"export folder {to} exists and is not empty", hint="pass another --to, or --force to replace it")
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}."))
    try:
        if (src / "adapter_config.json").is_file():
            _merge_lora(src, tmp)
        else:
            for f in sorted(src.iterdir()):
                if f.is_file() and not f.name.startswith(_TRAINING_STATE) and f.suffix not in (".pt", ".pth"):
                    shutil.copy2(f, tmp / f.name)
        (tmp / "README.md").write_text(model_card(run_dir, src), encoding="utf-8")
        if to.exists():
            shutil.rmtree(to)
        os.replace(tmp, to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return to


def _merge_lora(adapter: Path, out: Path) -> None:
    import json

    from peft import PeftModel

    from graftlm.models import load_model

    base_spec = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_spec:
        raise InputError(f"{adapter / 'adapter_config.json'} names no base model", hint="retrain with a current graftlm")
    base, tok = load_model(str(base_spec), device="cpu", dtype="float32")
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _fmt_num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def eval_rows(scores: dict[str, Any]) -> list[list[str]]:
    """Rows (leaf or suite, metric, n, base, trained, difference with CI, p, verdict) from `eval/scores.json`:
    every node holding `base` and `trained` results is one row."""
    rows: list[list[str]] = []

    def mean(node: Any) -> Any:
        return node.get("mean") if isinstance(node, dict) else node

    def walk(path: list[str], node: Any) -> None:
        if not isinstance(node, dict):
            return
        if "base" in node and "trained" in node:
            b, t = mean(node["base"]), mean(node["trained"])
            diff = node.get("diff")
            d = diff.get("diff", diff.get("mean")) if isinstance(diff, dict) else diff
            if d is None and isinstance(b, (int, float)) and isinstance(t, (int, float)):
                d = t - b
            ci = diff.get("ci") if isinstance(diff, dict) else None
            d_text = _fmt_num(d) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, list) and len(ci) == 2 else "")
            n = node.get("n") or (node["trained"].get("n") if isinstance(node["trained"], dict) else None)
            p = diff.get("p_value") if isinstance(diff, dict) else node.get("p_value")
            verdict = diff.get("verdict", "") if isinstance(diff, dict) else ""
            where = [x for x in path[:-1] if x not in ("leaves", "evaluators")]
            rows.append([" / ".join(where) or "-", path[-1] if path else "-", _fmt_num(n), _fmt_num(b), _fmt_num(t),
                         d_text, _fmt_num(p), str(verdict)])
            return
        for key, child in node.items():
            if key not in ("models", "judge", "skipped"):
                walk([*path, str(key)], child)

    walk([], scores)
    return rows


def model_card(run_dir: Path, model_dir: Path) -> str:
    """README.md of an exported model: base model, taxonomy leaves, data counts, evaluation table."""
    run_dir = Path(run_dir)
    gen = read_manifest(run_dir / "generate") or {}
    mix = read_manifest(run_dir / "mix") or {}
    train = read_manifest(run_dir / "train") or {}
    scores_path = run_dir / "eval" / "scores.json"
    scores = read_json(scores_path) if scores_path.is_file() else None
    base = str(train.get("base_model") or "unknown")
    lines = ["---", "library_name: transformers", "tags: [graftlm, lab, instructlab-taxonomy]", "---", "",
             f"# {run_dir.resolve().name}", "",
             f"Fine-tuned from `{base}` by graftlm with the LAB method "
             "(taxonomy -> synthetic data -> multi-phase training with replay -> evaluation).", ""]
    leaves = gen.get("leaves") or {}
    lines += ["## Taxonomy leaves", ""]
    if leaves:
        lines.append(_md_table(["leaf", "type", "generated", "kept", "eval items"],
                               [[name, v.get("type", "-"), v.get("generated", "-"), v.get("kept", "-"),
                                 v.get("eval_items", "-")] for name, v in leaves.items()]))
    else:
        lines.append("(no generate manifest found)")
    teacher = gen.get("teacher")
    if teacher:
        lines += ["", f"Teacher: `{teacher if isinstance(teacher, str) else stable_json(teacher)}`"]
    lines += ["", "## Training data", ""]
    phases = mix.get("phases") or []
    if phases:
        lines.append(_md_table(["phase", "kind", "samples"],
                               [[p.get("name"), p.get("kind"), p.get("samples")] for p in phases]))
        lines += ["", f"Strategy: {mix.get('strategy', '-')}."]
    else:
        lines.append("(no mix manifest found)")
    sel_rows = []
    for name in train.get("phases") or []:
        pm = read_manifest(run_dir / "train" / str(name)) or {}
        selected = str(pm.get("selected") or "")
        chosen: dict[str, Any] = next((c for c in pm.get("checkpoints") or [] if str(c.get("path")) == selected), {})
        sel_rows.append([name, len(pm.get("checkpoints") or []), Path(selected).name or "-",
                         chosen.get("step", "-"), _fmt_num(chosen.get("score"))])
    if sel_rows:
        lines += ["", "## Checkpoint selection", ""]
        lines.append(_md_table(["phase", "checkpoints", "selected", "step", "score"], sel_rows))
    lines += ["", "## Evaluation (base vs trained)", ""]
    rows = eval_rows(scores) if isinstance(scores, dict) else []
    if rows:
        lines.append(_md_table(["leaf / suite", "metric", "n", "base", "trained", "difference [95% CI]", "p",
                                "verdict"], rows))
    else:
        lines.append("(no evaluation found)")
    lines += ["", f"Exported from `{model_dir}`.", ""]
    return "\n".join(lines)
