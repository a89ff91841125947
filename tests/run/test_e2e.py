"""`graft run` end to end on a miniature taxonomy: tiny model as student, the fake teacher and judge.

The run is killed with SIGKILL in the middle of training and rerun; it must resume (generate not redone,
training not restarted from step 0) and finish with every stage's manifest. A changed recipe section must
rerun only the stages downstream of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from graftlm.run import STAGES
from graftlm.taxonomy.docrepo import build_docs_repo
from graftlm.testing.taxonomy import build_taxonomy

DOC = """# The Copper Owl Ferry

The Copper Owl is a fictional ferry that crosses Lake Vintry. It was built in 1931 in the town of Essel.

## Crew

The ferry has a crew of six. Its first captain was Orla Penn, who sailed it for 22 years.

## Route

The crossing from Essel to Dunmarrow takes forty minutes. The ferry sails nine times a day in summer.
"""

KNOWLEDGE_SEEDS = [
    ("The Copper Owl is a fictional ferry that crosses Lake Vintry.",
     [("What lake does the Copper Owl cross?", "It crosses Lake Vintry."),
      ("What is the Copper Owl?", "It is a ferry."),
      ("Is the Copper Owl real?", "No, it is fictional.")]),
    ("It was built in 1931 in the town of Essel.",
     [("When was the Copper Owl built?", "It was built in 1931."),
      ("Where was the Copper Owl built?", "It was built in Essel."),
      ("Which town built the ferry?", "Essel built the ferry.")]),
    ("The ferry has a crew of six. Its first captain was Orla Penn.",
     [("How many crew does the ferry have?", "It has a crew of six."),
      ("Who was the first captain?", "Orla Penn was the first captain."),
      ("Who sailed the Copper Owl first?", "Orla Penn sailed it first.")]),
    ("Orla Penn sailed the ferry for 22 years.",
     [("How long did Orla Penn sail the ferry?", "She sailed it for 22 years."),
      ("Who sailed the ferry for 22 years?", "Orla Penn did."),
      ("Was Orla Penn a captain?", "Yes, she was the first captain.")]),
    ("The crossing from Essel to Dunmarrow takes forty minutes.",
     [("How long is the crossing?", "The crossing takes forty minutes."),
      ("Where does the ferry sail from?", "It sails from Essel."),
      ("Where does the ferry sail to?", "It sails to Dunmarrow.")]),
]

KNOWLEDGE_LEAF = "knowledge->transport->ferries->copper_owl"
SKILL_LEAF = "compositional_skills->writing->polite"

SKILL_SEEDS = [("Make this polite: Close the door.", "Could you please close the door?"),
               ("Make this polite: Send the file.", "Could you please send the file?"),
               ("Make this polite: Sit down.", "Could you please sit down?"),
               ("Make this polite: Call me.", "Could you please call me?"),
               ("Make this polite: Wait here.", "Could you please wait here?")]


def make_taxonomy(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "ferry.md").write_text(DOC, encoding="utf-8")
    commit = build_docs_repo(docs, root / "docs-repo")
    return build_taxonomy(root / "taxonomy", {
        "knowledge/transport/ferries/copper_owl": {
            "version": 3, "created_by": "tests", "domain": "Ferries", "document_outline": "A fictional ferry.",
            "seed_examples": [{"context": c, "questions_and_answers": [{"question": q, "answer": a} for q, a in qas]}
                              for c, qas in KNOWLEDGE_SEEDS],
            "document": {"repo": str(root / "docs-repo"), "commit": commit, "patterns": ["*.md"]}},
        "compositional_skills/writing/polite": {
            "version": 3, "created_by": "tests", "task_description": "Rewrite a command as a polite request.",
            "seed_examples": [{"question": q, "answer": a} for q, a in SKILL_SEEDS]},
    })


def write_recipe(path: Path, student: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "teacher": {"model": "fake"},
        "generate": {"samples_per_leaf": 6, "aux_tasks": ["extractive_summary"]},
        "mix": {"strategy": "phased"},
        "train": {"student": str(student), "epochs": 3, "batch_size": 2, "checkpoint_every_samples": 2,
                  "max_seq_len": 512, "max_tokens_per_row": 1024, "learning_rate": 1e-3, "warmup_steps": 1,
                  "num_threads": 1},
        "eval": {"max_new_tokens": 8, "bootstrap_samples": 100, "mt_bench_questions": 1,
                 "mc_questions_per_leaf": 4, "selection_items": 4},
    }), encoding="utf-8")
    return path


def graft(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "graftlm", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def unfinished_phase_with_checkpoint(train: Path) -> Path | None:
    if not train.is_dir():
        return None
    for phase in sorted(train.iterdir()):
        if phase.is_dir() and (phase / "resume" / "state.pt").is_file() and not (phase / "manifest.json").is_file():
            return phase
    return None


@pytest.mark.slow
def test_run_is_killed_mid_training_and_resumes(tmp_path: Path, tiny_model: Path) -> None:
    tax = make_taxonomy(tmp_path / "tax")
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model)
    out = tmp_path / "run"
    env = {**os.environ, "GRAFTLM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = ("run", str(tax), "--recipe", str(recipe), "--out", str(out))

    # Dry run: prints the plan, runs nothing.
    dry = subprocess.run([sys.executable, "-m", "graftlm", *args, "--dry-run"], env=env, text=True,
                         capture_output=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "knowledge->transport->ferries->copper_owl" in dry.stdout and "ETA:" in dry.stdout
    assert "optimizer steps" in dry.stdout and "teacher calls" in dry.stdout
    assert not (out / "generate").exists()

    # First run: SIGKILL once a phase has saved a checkpoint and is not finished.
    proc = graft(*args, env=env)
    phase = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        phase = unfinished_phase_with_checkpoint(out / "train")
        if phase is not None:
            break
        time.sleep(0.02)
    assert phase is not None, f"training never reached a checkpoint: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = (phase / "metrics.jsonl").read_text().splitlines()
    assert before, "the killed phase logged no step"
    gen_manifest = (out / "generate" / "manifest.json").read_bytes()
    gen_mtime = (out / "generate" / "train.jsonl").stat().st_mtime_ns
    assert not (out / "eval").exists()

    # Rerun: resumes.
    rerun = graft(*args, env=env)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err[-3000:]
    assert "[generate] up to date" in err and "[train] running (resume unfinished)" in err
    assert (out / "generate" / "manifest.json").read_bytes() == gen_manifest
    assert (out / "generate" / "train.jsonl").stat().st_mtime_ns == gen_mtime
    after = (phase / "metrics.jsonl").read_text().splitlines()
    # The steps before the kill's checkpoint are kept as they were (not redone from step 0), and the
    # phase then ran to its end.
    assert after[0] == before[0]
    steps = [json.loads(line)["step"] for line in after]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= len(before) - 1
    for name in STAGES:
        assert (out / name / "manifest.json").is_file(), name
    state = json.loads((out / "run.json").read_text())
    assert all(state["stages"][name]["status"] == "done" for name in STAGES)
    train = json.loads((out / "train" / "manifest.json").read_text())
    final_config = json.loads(Path(train["final_model"], "config.json").read_text())
    tiny_config = json.loads((tiny_model / "config.json").read_text())
    for key in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size"):
        assert final_config[key] == tiny_config[key], key
    # The evaluation scored the trained model against the student it started from, on every held-out
    # item of both leaves, and the report shows both leaves.
    scores = json.loads((out / "eval" / "scores.json").read_text())
    assert scores["models"]["trained"] == train["final_model"]
    assert scores["models"]["base"] == str(tiny_model)
    held_out = Counter(json.loads(line)["leaf"] for line in (out / "generate" / "eval.jsonl").read_text().splitlines())
    assert set(held_out) == {KNOWLEDGE_LEAF, SKILL_LEAF}
    assert {name: leaf["items"] for name, leaf in scores["leaves"].items()} == dict(held_out)
    report = (out / "report" / "report.md").read_text()
    assert KNOWLEDGE_LEAF in report and SKILL_LEAF in report

    # A third run has nothing to do.
    again = subprocess.run([sys.executable, "-m", "graftlm", *args], env=env, text=True, capture_output=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert all(f"[{name}] up to date" in again.stderr for name in STAGES)

    # A changed mix section reruns mix and everything after it, never generate.
    plan = subprocess.run([sys.executable, "-m", "graftlm", *args, "--dry-run", "--set", "mix.skills_replay=0.25"],
                          env=env, text=True, capture_output=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    status = {line.split()[0]: line for line in plan.stdout.splitlines()
              if line.split() and line.split()[0] in STAGES}
    assert "skip: up to date" in status["generate"] and "skip: up to date" in status["validate"]
    assert "run: inputs changed" in status["mix"]
    assert all("run:" in status[name] for name in ("train", "eval", "report"))

    # Export: an HF folder and a model card with the leaves and the evaluation table.
    exported = subprocess.run([sys.executable, "-m", "graftlm", "export", str(out), "--to", str(tmp_path / "model")],
                              env=env, text=True, capture_output=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    card = (tmp_path / "model" / "README.md").read_text()
    assert KNOWLEDGE_LEAF in card and SKILL_LEAF in card and "token_f1" in card
    exported_config = json.loads((tmp_path / "model" / "config.json").read_text())
    for key in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size"):
        assert exported_config[key] == final_config[key], key
    # The exported weights are the final model's: the same tensors, equal values.
    from safetensors.torch import load_file

    exported = {k: v for f in sorted((tmp_path / "model").glob("*.safetensors")) for k, v in load_file(f).items()}
    final = {k: v for f in sorted(Path(train["final_model"]).glob("*.safetensors")) for k, v in load_file(f).items()}
    assert exported and set(exported) == set(final)
    assert all(exported[k].float().allclose(final[k].float()) for k in final)
