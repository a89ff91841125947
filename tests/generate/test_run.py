"""run_generate end to end on a miniature taxonomy with the in-package fake teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftlm.config import GenerateConfig, Recipe, TeacherConfig
from graftlm.errors import TeacherError
from graftlm.generate import fake_responses
from graftlm.generate.dedup import jaccard, shingles
from graftlm.generate.run import preview_generate, run_generate
from graftlm.records import EvalItem, Sample
from graftlm.teacher.base import ChatResult, Message, SamplingOptions
from graftlm.teacher.fake import FakeTeacher

from .conftest import FREEFORM_SEEDS, GROUNDED_SEEDS, KNOWLEDGE_SEEDS


class RecordingTeacher:
    """A real teacher (the fake) that also records every prompt it is sent, and can fail on purpose."""

    def __init__(self, inner: FakeTeacher, fail_every: int = 0) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.prompts: list[str] = []
        self.fail_every = fail_every

    async def chat(self, messages: list[Message], options: SamplingOptions) -> ChatResult:
        self.prompts.append(messages[-1]["content"])
        if self.fail_every and len(self.prompts) % self.fail_every == 0:
            raise TeacherError("simulated 503 after retries")
        return await self.inner.chat(messages, options)

    async def aclose(self) -> None:
        await self.inner.aclose()


def recipe(**generate) -> Recipe:
    """The fake teacher and small targets; the per-chunk Q&A units of `facts: off` unless a test says
    otherwise (facts mode: tests/generate/test_facts_pipeline.py)."""
    return Recipe(teacher=TeacherConfig(model="fake", max_in_flight=8),
                  generate=GenerateConfig(**{"samples_per_leaf": 8, "facts": "off", **generate}))


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_generate_writes_complete_consistent_output(taxonomy: Path, tmp_path: Path):
    out = tmp_path / "gen"
    teacher = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    run_generate(taxonomy, out, recipe(), teacher=teacher, progress=False)

    manifest = json.loads((out / "manifest.json").read_text())
    train = [Sample.from_json(d) for d in lines(out / "train.jsonl")]
    evals = [EvalItem.from_json(d) for d in lines(out / "eval.jsonl")]
    rejects = lines(out / "rejects.jsonl")
    chunks = lines(out / "chunks.jsonl")
    assert manifest["counts"]["train"] == len(train) and manifest["counts"]["eval"] == len(evals)
    assert manifest["counts"]["rejects"] == len(rejects) and manifest["teacher"] == "fake-teacher"
    assert set(manifest["leaves"]) == {"compositional_skills->writing->polite",
                                       "compositional_skills->grounded->summary", "knowledge->geography->brindle"}
    assert len({s.id for s in train}) == len(train)

    for name, acc in manifest["leaves"].items():
        rejected = sum(sum(r.values()) for r in acc["rejected"].values())
        assert acc["generated"] == rejected + acc["duplicates"] + acc["eval_generated"] + acc["kept"], name
        core = [s for s in train if s.metadata["leaf"] == name and s.metadata["task"] in ("qa", "skill")]
        assert 0 < len(core) <= 8
        assert acc["eval_items"] == sum(1 for e in evals if e.leaf == name)
    assert any("rate" in acc["rejected"] for acc in manifest["leaves"].values())

    for s in train:
        assert [m["role"] for m in s.messages] == ["system", "user", "assistant"]
        assert all(m["content"].strip() for m in s.messages)
        for key in ("leaf", "leaf_type", "branch", "task", "seed", "chunk_id", "doc_sha256", "teacher",
                    "request_hashes", "scores"):
            assert key in s.metadata
        assert s.metadata["request_hashes"] and all(len(h) == 64 for h in s.metadata["request_hashes"])

    assert not (out / "facts.jsonl").exists() and "facts" not in manifest["files"]  # facts: off
    chunk_ids = {c["chunk_id"] for c in chunks}
    assert chunks and all(set(c) >= {"leaf", "chunk_id", "doc", "doc_sha256", "text"} for c in chunks)
    knowledge = [s for s in train if s.metadata["leaf_type"] == "knowledge"]
    aux = [s for s in knowledge if s.metadata["task"] != "qa"]
    assert {s.metadata["task"] for s in aux} == {"detailed_summary", "extractive_summary", "atomic_facts"}
    for s in knowledge:
        assert s.metadata["chunk_id"] in chunk_ids and len(s.metadata["doc_sha256"]) == 64
    for s in aux:
        chunk = next(c for c in chunks if c["chunk_id"] == s.metadata["chunk_id"])
        assert s.unmask and chunk["text"] in s.messages[1]["content"]
    grounded = [s for s in train if s.metadata["leaf_type"] == "grounded_skill"]
    assert grounded and all(s.messages[1]["content"].startswith(s.metadata["context"]) for s in grounded)

    # Only one leaf's seeds in any prompt.
    seed_texts = {
        "freeform": [q for q, _ in FREEFORM_SEEDS],
        "grounded": [c for _, _, c in GROUNDED_SEEDS],
        "knowledge": [qa[0] for _, qas in KNOWLEDGE_SEEDS for qa in qas],
    }
    for prompt in teacher.prompts:
        assert sum(any(t in prompt for t in texts) for texts in seed_texts.values()) <= 1

    # Held-out seed items never reach the teacher, and nothing near an eval item is trained on.
    held = [e for e in evals if e.source == "seed"]
    assert len(held) == 1 + 1 + len(KNOWLEDGE_SEEDS)
    for e in held:
        assert not any(e.question in p for p in teacher.prompts)
    assert any(e.source == "generated" for e in evals)
    for e in evals:
        for s in train:
            if s.metadata["leaf"] == e.leaf and s.metadata["task"] in ("qa", "skill"):
                text = s.messages[1]["content"] if e.context else s.metadata["question"]
                ref = f"{e.context}\n\n{e.question}" if e.context else e.question
                assert jaccard(shingles(ref), shingles(text)) < 0.7

    # A complete directory is not redone; without the manifest, the journal makes it without calls.
    again = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    before = (out / "train.jsonl").read_bytes()
    run_generate(taxonomy, out, recipe(), teacher=again, progress=False)
    (out / "manifest.json").unlink()
    run_generate(taxonomy, out, recipe(), teacher=again, progress=False)
    assert again.prompts == []
    assert (out / "train.jsonl").read_bytes() == before and (out / "manifest.json").is_file()


def test_teacher_failures_become_rejects(taxonomy: Path, tmp_path: Path):
    out = tmp_path / "gen"
    teacher = RecordingTeacher(FakeTeacher([fake_responses.respond]), fail_every=4)
    run_generate(taxonomy, out, recipe(max_failed_share=0.5), teacher=teacher, progress=False)
    reasons = {(r["stage"], r["reason"]) for r in lines(out / "rejects.jsonl")}
    assert any(reason == "teacher_error:TeacherError" for _, reason in reasons)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train"] > 0
    for name, acc in manifest["leaves"].items():  # failed requests are in the funnel too
        rejected = sum(sum(r.values()) for r in acc["rejected"].values())
        assert acc["generated"] == rejected + acc["duplicates"] + acc["eval_generated"] + acc["kept"], name


def test_failing_teacher_stops_and_rerun_retries(taxonomy: Path, tmp_path: Path):
    out = tmp_path / "gen"
    with pytest.raises(TeacherError, match="requests failed"):
        run_generate(taxonomy, out, recipe(), teacher=RecordingTeacher(FakeTeacher([fake_responses.respond]), fail_every=2),
                     progress=False)
    assert not (out / "manifest.json").exists()
    retry = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    run_generate(taxonomy, out, recipe(), teacher=retry, progress=False)
    assert retry.prompts  # the failed requests are retried
    assert not any(r["reason"].startswith("teacher_error") for r in lines(out / "rejects.jsonl"))
    clean = tmp_path / "clean"
    run_generate(taxonomy, clean, recipe(), teacher=FakeTeacher([fake_responses.respond]), progress=False)
    assert (out / "train.jsonl").read_bytes() == (clean / "train.jsonl").read_bytes()


def test_leaf_yielding_nothing_warns_and_duplicates_are_removed(taxonomy: Path, tmp_path: Path):
    def responder(messages, options, index):
        text = messages[-1]["content"]
        if text.startswith("Check a question for this task: Write polite requests."):
            return "Explanation: not a request.\nVerdict: 0"
        if text.startswith("Write a new passage like"):  # grounded: always the same passage and question
            return "Passage: " + " ".join(["The old mill by the river was rebuilt in 1901 by the town."] * 3)
        if text.startswith("Write questions about a passage"):
            return "Question: Summarize the passage in one sentence for a busy reader."
        return fake_responses.respond(messages, options, index)

    out = tmp_path / "gen"
    teacher = FakeTeacher([responder])
    leaves = _skill_leaves(taxonomy)
    run_generate(taxonomy, out, recipe(), leaves=leaves, teacher=teacher, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    polite = manifest["leaves"]["compositional_skills->writing->polite"]
    assert polite["kept"] == 0 and polite["rejected"]["judge_question"]["judged_0"] > 0
    assert any("polite" in w and "'judge_question'" in w and "judged_0" in w for w in manifest["warnings"])
    summary = manifest["leaves"]["compositional_skills->grounded->summary"]
    assert summary["duplicates"] > 0 and summary["kept"] >= 1
    dups = [r for r in lines(out / "rejects.jsonl") if r["stage"] == "dedup"]
    assert {r["reason"] for r in dups} <= {"near_generated", "near_seed", "near_eval"} and dups


def _skill_leaves(taxonomy: Path):
    from graftlm.taxonomy.load import load_taxonomy

    return [leaf for leaf in load_taxonomy(taxonomy) if not leaf.is_knowledge]


def test_preview_is_small_and_writes_no_dataset(taxonomy: Path, tmp_path: Path):
    out = tmp_path / "preview"
    results = preview_generate(taxonomy, out, recipe(preview_samples=3), leaves=_skill_leaves(taxonomy)[:1])
    samples = [r for r in results if r["kind"] == "sample"]
    assert samples and all("rating" in s["metadata"]["scores"] for s in samples)
    assert not (out / "train.jsonl").exists() and not (out / "manifest.json").exists()


def test_cli_generate_and_errors(taxonomy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from graftlm.cli import main

    out = tmp_path / "cli"
    code = main(["generate", str(taxonomy), "--out", str(out), "--teacher", "fake", "--samples-per-leaf", "4",
                 "--leaf", "compositional_skills->writing->polite"])
    captured = capsys.readouterr()
    assert code == 0 and "compositional_skills->writing->polite" in captured.out
    assert list(json.loads((out / "manifest.json").read_text())["leaves"]) == ["compositional_skills->writing->polite"]

    assert main(["generate", str(taxonomy), "--out", str(out), "--teacher", "fake:abc"]) == 2
    assert "fake:SECONDS" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing"), "--out", str(out), "--teacher", "fake"]) == 2
    assert "taxonomy folder not found" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["generate", str(taxonomy), "--out", str(tmp_path / "afile"), "--teacher", "fake"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["generate", str(taxonomy), "--out", str(out), "--teacher", "fake", "--preview",
                 "--leaf", "compositional_skills->grounded->summary"]) == 0
    assert "preview of leaf compositional_skills->grounded->summary" in capsys.readouterr().out


def test_changed_config_is_not_served_stale_results(taxonomy: Path, tmp_path: Path):
    out = tmp_path / "gen"
    leaves = _skill_leaves(taxonomy)
    run_generate(taxonomy, out, recipe(), leaves=leaves, teacher=FakeTeacher([fake_responses.respond]), progress=False)
    ratings = {s["metadata"]["scores"]["rating"] for s in lines(out / "train.jsonl")}
    assert ratings == {2, 3}
    again = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    run_generate(taxonomy, out, recipe(rating_threshold=3), leaves=leaves, teacher=again, progress=False)
    assert {s["metadata"]["scores"]["rating"] for s in lines(out / "train.jsonl")} == {3}
    assert json.loads((out / "manifest.json").read_text())["config"]["rating_threshold"] == 3
    assert again.prompts == []  # every request was answered from the call cache


def test_journal_cuts_a_half_written_last_line(tmp_path: Path):
    from graftlm.generate.run import read_journal

    path = tmp_path / "units.jsonl"
    good = json.dumps({"unit_id": "u1", "leaf": "a", "generated": 2, "candidates": [], "rejects": []})
    path.write_text(good + "\n" + '{"unit_id": "u2", "leaf": "a", "gener')
    done = read_journal(path)
    assert list(done) == ["u1"] and done["u1"].generated == 2
    assert path.read_text() == good + "\n"  # the next append starts on a fresh line


def test_grounded_same_question_about_new_passages_is_not_a_duplicate(taxonomy: Path, tmp_path: Path):
    def responder(messages, options, index):
        if messages[-1]["content"].startswith("Write questions about a passage"):
            return "Question: Summarize the passage in one sentence for a busy reader."
        return fake_responses.respond(messages, options, index)

    grounded = [leaf for leaf in _skill_leaves(taxonomy) if leaf.type.value == "grounded_skill"]
    out = tmp_path / "gen"
    run_generate(taxonomy, out, recipe(eval_generated_share=0.0, eval_selection_share=0.0), leaves=grounded,
                 teacher=FakeTeacher([responder]), progress=False)  # no seed held out: all candidates count
    acc = json.loads((out / "manifest.json").read_text())["leaves"]["compositional_skills->grounded->summary"]
    assert acc["duplicates"] == 0 and acc["kept"] >= 5
