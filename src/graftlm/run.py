"""The whole pipeline as resumable stages: validate, generate, mix, train, eval, report.

This is the only module that knows the order of the stages, and it only orders them: `STAGE_TABLE`
lists each stage with the stages it reads, the recipe sections that are its inputs and the function
that runs it. Each stage writes its own folder in the run directory with `manifest.json` last;
`run.json` beside them records, for each finished stage, the hash of its inputs (its recipe sections
plus the manifests of the stages it reads). A rerun skips every stage whose recorded hash matches and
whose manifest exists, so it resumes at the first unfinished stage, and a changed recipe section reruns
that stage and everything downstream of it.

The dry-run estimate lives in `plan.py`, export in `export/`, local document repositories in
`taxonomy/docrepo.py`.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
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
    write_json,
    write_manifest,
)
from graftlm.config import Recipe
from graftlm.errors import ConfigError, InputError, ModelError, StageError, TaxonomyError
from graftlm.plan import RunEstimate
from graftlm.taxonomy.model import Leaf

log = logging.getLogger(__name__)

STATE_FILE = "run.json"
"""Per-stage input hashes, status and wall times of a run directory (written after each stage)."""
RECIPE_FILE = "recipe.json"
"""The recipe of the latest run into a run directory, with every default filled in."""
LOCK_FILE = ".lock"
_OWN_FILES = frozenset({STATE_FILE, RECIPE_FILE, LOCK_FILE})
"""Files `graft run` writes at the top of a run directory."""


@dataclass
class RunContext:
    taxonomy: Path
    recipe: Recipe
    out: Path
    leaves: list[Leaf] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def folder(self, stage: str) -> Path:
        return self.out / stage


# --- the stages ----------------------------------------------------------------------------------

def taxonomy_hash(taxonomy: Path, leaves: list[Leaf]) -> str:
    """Hash of every selected leaf's name, its qna.yaml's place in `taxonomy` and its bytes (documents are
    pinned by their commit)."""
    root = Path(taxonomy).resolve()

    def where(leaf: Leaf) -> str:
        path = Path(leaf.path).resolve()
        return path.relative_to(root).as_posix() if root in path.parents else str(path)

    return hash_obj([[leaf.name, where(leaf), hash_file(leaf.path)] for leaf in leaves])


def _validate_inputs(ctx: RunContext) -> dict[str, Any]:
    return {"taxonomy": taxonomy_hash(ctx.taxonomy, ctx.leaves), "leaves": [leaf.name for leaf in ctx.leaves]}


def content_hash(path: str | None) -> str | None:
    """Hash of a file's bytes, or of every file's relative path and bytes under a folder; None if missing."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        return hash_file(p)
    if p.is_dir():
        return hash_obj([[f.relative_to(p).as_posix(), hash_file(f)] for f in sorted(p.rglob("*")) if f.is_file()])
    return None


def _extra_datasets(ctx: RunContext) -> dict[str, Any]:
    return {"extra": [content_hash(e.path) for e in ctx.recipe.mix.extra]}


def _exam_files(ctx: RunContext) -> dict[str, Any]:
    """The exam (`eval.questions`) and its documents are read by path: their contents are inputs too."""
    e = ctx.recipe.eval
    if not (e.questions or e.documents):
        return {}
    return {"exam": [content_hash(e.questions), content_hash(e.documents)]}


def _run_validate(ctx: RunContext, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(folder, {
        "taxonomy": str(ctx.taxonomy),
        "taxonomy_hash": taxonomy_hash(ctx.taxonomy, ctx.leaves),
        "leaves": [{"name": leaf.name, "type": leaf.type.value, "path": str(leaf.path),
                    "seeds": len(leaf.skill_seeds) or len(leaf.knowledge_seeds)} for leaf in ctx.leaves],
    })


def _run_generate(ctx: RunContext, folder: Path) -> None:
    from graftlm.generate.run import run_generate

    run_generate(ctx.taxonomy, folder, ctx.recipe, leaves=ctx.leaves)


def _run_mix(ctx: RunContext, folder: Path) -> None:
    from graftlm.mix import run_mix

    run_mix(ctx.folder("generate"), folder, ctx.recipe.mix)


def _run_train(ctx: RunContext, folder: Path) -> None:
    """Every phase with checkpoint selection (when a phase saves more than one checkpoint to choose from);
    every torchrun rank runs this same function."""
    from graftlm.evaluate.selection import make_scorer
    from graftlm.train.run import run_train

    cfg = ctx.recipe.train
    scorer = make_scorer(ctx.folder("generate"), ctx.recipe) if cfg.keeps_several_checkpoints() else None
    run_train(ctx.folder("mix"), folder, cfg, scorer=scorer)


def _run_eval(ctx: RunContext, folder: Path) -> None:
    from graftlm.evaluate.run import run_eval

    train_dir = ctx.folder("train")
    train = _read_manifest_or_fail(train_dir, "train")
    final = train.get("final_model")
    if not final:
        raise StageError(f"{train_dir / MANIFEST} names no final_model", hint="delete the train folder and rerun")
    run_eval(str(final), ctx.folder("generate"), folder, ctx.recipe,
             base_model=str(train.get("base_model") or ctx.recipe.train.student))


def _run_report(ctx: RunContext, folder: Path) -> None:
    from graftlm.report import run_report

    run_report(ctx.out, folder)


@dataclass(frozen=True)
class Stage:
    """One stage of a run."""

    name: str
    upstream: tuple[str, ...]
    """Stages whose folders it reads (their manifests are part of its inputs)."""
    sections: tuple[str, ...]
    """The recipe sections that are its inputs, as attribute paths on `Recipe` (`judge_or_teacher`,
    `eval.selection`)."""
    run: Callable[[RunContext, Path], None]
    """Runs the stage into its folder, writing `manifest.json` last."""
    extra: Callable[[RunContext], dict[str, Any]] | None = None
    """Inputs besides recipe sections and upstream manifests (the taxonomy, extra dataset files)."""
    estimated: bool = False
    """Whether the dry-run plan estimates its time well enough to calibrate later ETAs by it."""
    keep_on_clear: tuple[str, ...] = ()
    """Name prefixes of files the stage keeps when its inputs change (generation's call cache is keyed by
    the request itself, so it stays valid)."""


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("validate", (), (), _run_validate, extra=_validate_inputs),
    Stage("generate", ("validate",), ("teacher", "judge_or_teacher", "generate"), _run_generate, estimated=True,
          keep_on_clear=("calls.sqlite",)),
    Stage("mix", ("generate",), ("mix",), _run_mix, extra=_extra_datasets),
    # Checkpoint selection uses a few eval settings; the judge itself is left out on purpose, so that
    # changing the judge re-evaluates without retraining.
    Stage("train", ("mix", "generate"), ("train", "eval.selection"), _run_train, estimated=True),
    Stage("eval", ("train", "generate"), ("eval", "judge_or_teacher", "train.student"), _run_eval, extra=_exam_files,
          estimated=True),
    Stage("report", ("generate", "train", "eval"), (), _run_report),
)
"""Every stage in the order it runs; upstream stages always come first."""

STAGES = tuple(s.name for s in STAGE_TABLE)
_BY_NAME = {s.name: s for s in STAGE_TABLE}


def _manifest_hash(folder: Path) -> str | None:
    path = folder / MANIFEST
    return hash_file(path) if path.is_file() else None


def _section(recipe: Recipe, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), recipe)


def stage_inputs(stage: Stage, ctx: RunContext) -> dict[str, Any] | None:
    """What a stage's input hash covers: its recipe sections, its extra inputs and the manifests of the
    stages it reads. None when an upstream manifest is missing (the upstream stage must run first)."""
    hashes = {up: _manifest_hash(ctx.folder(up)) for up in stage.upstream}
    if any(h is None for h in hashes.values()):
        return None
    inputs: dict[str, Any] = {**hashes, **{path: _section(ctx.recipe, path) for path in stage.sections}}
    if stage.extra is not None:
        inputs.update(stage.extra(ctx))
    return inputs


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
class RunPlan:
    """What `graft run` would do: each stage with run/skip and why, and the estimate (`graft run --dry-run`)."""

    stages: list[StagePlan]
    estimate: RunEstimate

    @property
    def eta_s(self) -> float:
        return self.estimate.eta_s(p.name for p in self.stages if p.runs)


def plan_stages(ctx: RunContext) -> list[StagePlan]:
    """Which stages are up to date and which would run, in order. A stage whose upstream stage runs
    always runs too (its input hash is only known once the upstream manifest exists)."""
    plans: list[StagePlan] = []
    upstream_runs = False
    for stage in STAGE_TABLE:
        folder = ctx.folder(stage.name)
        inputs = None if upstream_runs else stage_inputs(stage, ctx)
        h = None if inputs is None else hash_obj(_jsonable(inputs))
        rec = ctx.state.get("stages", {}).get(stage.name, {})
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
        plans.append(StagePlan(stage.name, folder, h, runs, reason))
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


# --- the run directory -----------------------------------------------------------------------------

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


def check_run_dir(out: Path) -> None:
    """Refuse a non-empty folder that is not a graftlm run directory (it has no `run.json`): `graft run`
    never mixes its stages into, or clears, a folder of the user's."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder", hint="pass a new folder, or a run directory to resume")
    if not out.is_dir() or (out / STATE_FILE).is_file():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_FILES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InputError(f"--out {out} is not empty ({shown}) and is not a graftlm run directory (it has no {STATE_FILE})",
                         hint="pass a new or empty folder as --out; a run directory made by `graft run` resumes")


def _clear_stage(stage: Stage, plan: StagePlan, ctx: RunContext) -> None:
    """Make room for a stage whose inputs changed: delete its old output, but only output that is
    graftlm's (recorded in run.json, or carrying a manifest). Anything else is refused, never deleted."""
    rec = ctx.state.get("stages", {}).get(plan.name, {})
    if rec.get("input_hash") == plan.input_hash or not plan.folder.exists():
        return  # same inputs: leave the unfinished work for the stage to resume
    if not plan.folder.is_dir() or plan.folder.is_symlink():
        raise StageError(f"{plan.folder} is in the way of the {plan.name} stage and is not a folder graftlm made",
                         hint="move it away, or pass another --out")
    if not rec and read_manifest(plan.folder) is None:
        if not any(plan.folder.iterdir()):
            return
        raise StageError(f"{plan.folder} holds files that are not a graftlm {plan.name} stage ({STATE_FILE} does not "
                         "record it and it has no manifest.json); graftlm does not delete them",
                         hint=f"move {plan.folder} away, or pass another --out")
    log.info("%s: inputs changed, clearing %s", plan.name, plan.folder)
    keep = stage.keep_on_clear
    for child in plan.folder.iterdir():
        if keep and child.name.startswith(keep):
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _read_manifest_or_fail(folder: Path, stage: str) -> dict[str, Any]:
    manifest = read_manifest(folder)
    if manifest is None:
        raise StageError(f"stage {stage} finished without writing {folder / MANIFEST}",
                         hint=f"delete {folder} and rerun to redo the stage")
    return manifest


@contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """One `graft run` per run directory at a time."""
    import fcntl

    with open(out / LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StageError(f"another `graft run` is using {out}",
                             hint="wait for it to finish, or pass another --out") from None
        yield


# --- checks before anything runs -------------------------------------------------------------------

def load_run_context(taxonomy: Path, recipe_path: Path, out: Path, *, overrides: dict[str, Any] | None = None,
                     build_documents: bool = True) -> RunContext:
    """Load and check everything a run needs before any teacher call: the recipe (with its cross-field
    checks), the taxonomy (through the validator), the models named by the recipe, what training needs
    from this machine. With `build_documents`, missing local document repositories are built; without
    (a dry run), nothing is written."""
    from graftlm.config import load_recipe
    from graftlm.evaluate.exam import check_exam_config
    from graftlm.taxonomy.docrepo import prepare_local_documents
    from graftlm.taxonomy.load import load_taxonomy

    recipe = load_recipe(recipe_path, overrides)
    taxonomy = Path(taxonomy)
    if not taxonomy.is_dir():
        raise InputError(f"taxonomy folder not found: {taxonomy}",
                         hint="pass the root of a taxonomy (the folder holding knowledge/ and compositional_skills/)")
    leaves = load_taxonomy(taxonomy)
    if not leaves:
        raise TaxonomyError(f"{taxonomy} has no leaves (no qna.yaml under knowledge/, compositional_skills/ "
                            "or foundational_skills/)", hint="pass the root of an InstructLab taxonomy")
    check_models(recipe)
    check_training(recipe)
    check_exam_config(recipe.eval.questions, recipe.eval.documents)
    out = Path(out)
    check_run_dir(out)
    if build_documents:
        prepare_local_documents(taxonomy, leaves)
    return RunContext(taxonomy, recipe, out, leaves, _load_state(out))


def check_models(recipe: Recipe) -> None:
    """Fail early when a local model named by the recipe does not exist (HTTP endpoints and `fake` pass)."""
    from graftlm.models import resolve

    specs = [("train.student", recipe.train.student), ("teacher.model", recipe.teacher.model)]
    if recipe.judge is not None:
        specs.append(("judge.model", recipe.judge.model))
    for key, spec in specs:
        if not spec.is_local:
            continue
        try:
            resolve(spec)
        except ModelError as e:
            raise ConfigError(f"{key}: {e.message}", hint=e.hint) from None


def check_training(recipe: Recipe) -> None:
    """What training needs from this machine (a GPU for some kernels, a compiler, peft), checked before
    generation spends teacher calls. The recipe's own cross-field checks ran when it loaded."""
    from graftlm.train.run import check_config

    check_config(recipe.train)
    for name in recipe.train.phase_overrides:
        check_config(recipe.train.for_phase(name))


# --- running -----------------------------------------------------------------------------------------

def plan_run(taxonomy: Path, recipe_path: Path, out: Path, *, overrides: dict[str, Any] | None = None) -> RunPlan:
    """The plan of a run (`graft run --dry-run`): stages to run or skip, teacher calls, samples, steps, ETA.
    Checks everything a run checks, and writes nothing."""
    from graftlm.plan import estimate_run

    ctx = load_run_context(Path(taxonomy), Path(recipe_path), Path(out), overrides=overrides, build_documents=False)
    return RunPlan(plan_stages(ctx), estimate_run(ctx.recipe, ctx.leaves, ctx.out))


def run_pipeline(taxonomy: Path, recipe_path: Path, out: Path, *, overrides: dict[str, Any] | None = None) -> Path:
    """Run every stage that is not up to date, in order; return the run directory."""
    ctx = load_run_context(Path(taxonomy), Path(recipe_path), Path(out), overrides=overrides)
    ctx.out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) != 0:
        _train_only(ctx)
        return ctx.out
    with _run_lock(ctx.out):
        write_json(ctx.out / RECIPE_FILE, ctx.recipe.model_dump(mode="json"))
        if not (ctx.out / STATE_FILE).is_file():
            _save_state(ctx)  # from here on the folder is a graftlm run directory
        for stage in STAGE_TABLE:
            _run_if_needed(stage, ctx)
    return ctx.out


def _run_if_needed(stage: Stage, ctx: RunContext) -> None:
    name = stage.name
    plan = next(p for p in plan_stages(ctx) if p.name == name)
    if not plan.runs:
        _say(f"[{name}] up to date")
        return
    assert plan.input_hash is not None  # upstream manifests exist once upstream stages ran
    _clear_stage(stage, plan, ctx)
    _say(f"[{name}] running ({plan.reason})")
    stages = ctx.state.setdefault("stages", {})
    resuming = plan.reason == "resume unfinished"
    prev_wall = float(stages.get(name, {}).get("wall_s", 0.0)) if resuming else 0.0
    prev_cpu = float(stages.get(name, {}).get("cpu_s", 0.0)) if resuming else 0.0
    stages[name] = {"input_hash": plan.input_hash, "status": "running", "wall_s": prev_wall, "cpu_s": prev_cpu}
    _save_state(ctx)
    estimated = _stage_estimate(ctx, stage)
    start, cpu_start = time.perf_counter(), _cpu_s()
    try:
        stage.run(ctx, plan.folder)
        _read_manifest_or_fail(plan.folder, name)
    finally:
        stages[name]["wall_s"] = round(prev_wall + time.perf_counter() - start, 2)
        stages[name]["cpu_s"] = round(prev_cpu + _cpu_s() - cpu_start, 2)
        _save_state(ctx)
    stages[name]["status"] = "done"
    _save_state(ctx)
    if estimated and not prev_wall and stages[name]["wall_s"] > 2:
        from graftlm.plan import store_calibration

        store_calibration(ctx.recipe, name, stages[name]["wall_s"], *estimated)
    _say(f"[{name}] done in {stages[name]['wall_s']:.0f} s")


def _train_only(ctx: RunContext, poll_s: float = 2.0) -> None:
    """A non-zero torchrun rank: wait until rank 0 starts the train stage, join it, and leave the other
    stages to rank 0. Rank 0 and this rank agree on the stage through its input hash."""
    stage = _BY_NAME["train"]
    while True:
        ctx.state = _load_state(ctx.out)
        plan = next(p for p in plan_stages(ctx) if p.name == stage.name)
        rec = ctx.state.get("stages", {}).get(stage.name, {})
        if plan.input_hash is not None and rec.get("input_hash") == plan.input_hash:
            if rec.get("status") == "done":
                return
            if rec.get("status") == "running":
                break
        time.sleep(poll_s)
    stage.run(ctx, plan.folder)


def _stage_estimate(ctx: RunContext, stage: Stage) -> tuple[float, float] | None:
    """(estimated seconds, benchmark GFLOP/s used) of one stage, to calibrate later ETAs against its
    measured wall time."""
    if not stage.estimated:
        return None
    from graftlm.plan import estimate_run

    try:
        est = estimate_run(ctx.recipe, ctx.leaves, ctx.out)
    except Exception as e:  # an estimate must never stop a run
        log.info("no estimate for %s: %s", stage.name, e)
        return None
    seconds = est.stage_s.get(stage.name)
    return (seconds, est.gflops) if seconds else None


def _cpu_s() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
