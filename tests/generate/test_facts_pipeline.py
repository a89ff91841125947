"""Facts mode end to end through the in-package fake teacher: facts.jsonl, views with their metadata,
rejects by reason, every asked-for view kept (no cap cuts them), and resume without new teacher calls."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from graftlm.generate import fake_responses
from graftlm.generate.facts import sentence_text, split_sentences
from graftlm.generate.run import preview_generate, run_generate
from graftlm.records import Sample
from graftlm.taxonomy.load import select_leaves
from graftlm.teacher.fake import FakeTeacher

from .conftest import DOC
from .test_run import RecordingTeacher, lines, recipe

VIEW_TASKS = {"qa": "qa", "reverse_qa": "qa", "paraphrase": "paraphrase", "relation": "relation",
              "rewrite:faq": "rewrite", "rewrite:newcomer": "rewrite", "rewrite:key_points": "rewrite"}
DOC_SENTENCES = [sentence_text(DOC, s) for s in split_sentences(DOC)]


def _knowledge(taxonomy: Path):
    return [leaf for leaf in select_leaves(taxonomy, base="empty") if leaf.is_knowledge]


def test_facts_mode_writes_facts_and_views(taxonomy: Path, tmp_path: Path):
    out = tmp_path / "gen"
    teacher = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    cfg = recipe(facts="teacher", samples_per_leaf=4, eval_generated_share=0.0, eval_selection_share=0.0)
    run_generate(taxonomy, out, cfg, leaves=_knowledge(taxonomy), teacher=teacher, progress=False)

    manifest = json.loads((out / "manifest.json").read_text())
    facts = lines(out / "facts.jsonl")
    train = [Sample.from_json(d) for d in lines(out / "train.jsonl")]
    rejects = lines(out / "rejects.jsonl")
    assert manifest["files"]["facts"] == "facts.jsonl" and manifest["counts"]["facts"] == len(facts)
    assert sum(p.startswith("List the atomic facts") for p in teacher.prompts) == 1  # one chunk, one call

    # Facts: the chunk's sentences, less the one that leans on a pronoun, each located in the chunk.
    chunk = lines(out / "chunks.jsonl")[0]
    assert [f["text"] for f in facts] == [s for s in DOC_SENTENCES if s != "It is 48 kilometres long."]
    assert {r["reason"] for r in rejects if r["stage"] == "facts"} >= {"pronoun_only"}
    for f in facts:
        assert set(f) == {"fact_id", "leaf", "chunk_id", "doc", "span", "text", "source", "duplicate_of", "part"}
        assert len(f["fact_id"]) == 16 and f["source"] == "teacher" and f["part"] == "train"
        assert f["duplicate_of"] is None and f["chunk_id"] == chunk["chunk_id"]
        assert " ".join(chunk["text"][f["span"][0]:f["span"][1]].split()) == f["text"]
    ids = {f["fact_id"] for f in facts}
    assert len(ids) == len(facts)

    # Views: the view names its task and the facts it states; every Q&A view is kept.
    aux = [s for s in train if "view" not in s.metadata]  # auxiliary tasks stay as configured
    assert {s.metadata["task"] for s in aux} == {"detailed_summary", "extractive_summary", "atomic_facts"}
    train = [s for s in train if "view" in s.metadata]
    views = Counter(s.metadata["view"] for s in train)
    assert set(views) == set(VIEW_TASKS)
    for s in train:
        view = s.metadata["view"]
        assert s.metadata["task"] == VIEW_TASKS[view] and s.unmask == (VIEW_TASKS[view] != "qa")
        assert set(s.metadata["fact_ids"]) <= ids and (len(s.metadata["fact_ids"]) == 1 or view not in
                                                       ("qa", "reverse_qa", "paraphrase"))
    qa = [s for s in train if s.metadata["task"] == "qa"]
    # samples_per_leaf (4) does not cut the views asked for per fact: every fact keeps its Q&A views
    assert len({s.metadata["fact_ids"][0] for s in qa}) == len(facts) > 4 and len(qa) > len(facts)
    assert views["paraphrase"] >= len(facts) - 2 and views["rewrite:faq"] == 1
    relation = [s for s in train if s.metadata["view"] == "relation"]
    assert all(len(s.metadata["entities"]) == 2 and s.metadata["fact_ids"] for s in relation)

    # Rejects by view and reason, counted in the leaf's accounting.
    acc = next(iter(manifest["leaves"].values()))
    assert acc["rejected"]["qa"]["answer_missing_fact"] >= 1
    assert acc["rejected"]["paraphrase"]["changes_facts"] >= 1
    assert acc["rejected"].get("select", {}).get("over_target", 0) == 0
    assert all(r["fact_id"] in ids for r in rejects if r["stage"] in ("qa", "reverse_qa", "paraphrase"))
    rejected = sum(sum(r.values()) for r in acc["rejected"].values())
    assert acc["generated"] == rejected + acc["duplicates"] + acc["eval_generated"] + acc["kept"]

    # Resume: without the manifest, the journal (facts included) rebuilds the output with no teacher call.
    again = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    before = {name: (out / name).read_bytes() for name in ("train.jsonl", "facts.jsonl")}
    (out / "manifest.json").unlink()
    run_generate(taxonomy, out, cfg, leaves=_knowledge(taxonomy), teacher=again, progress=False)
    assert again.prompts == []
    assert {name: (out / name).read_bytes() for name in before} == before


def test_sentences_mode_needs_no_facts_call_and_off_writes_no_facts(taxonomy: Path, tmp_path: Path):
    teacher = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    out = tmp_path / "sentences"
    cfg = recipe(facts="sentences", aux_tasks=[], samples_per_leaf=30,
                 views={"qa": 1, "reverse_qa": 1, "paraphrase": 0, "relations": 0, "rewrites": []})
    run_generate(taxonomy, out, cfg, leaves=_knowledge(taxonomy), teacher=teacher, progress=False)
    facts = lines(out / "facts.jsonl")
    assert [f["text"] for f in facts] == DOC_SENTENCES and {f["source"] for f in facts} == {"sentence"}
    assert not any(p.startswith("List the atomic facts") for p in teacher.prompts)
    judged = sum(p.startswith("Check a question") for p in teacher.prompts)
    assert len(teacher.prompts) == 2 * len(DOC_SENTENCES) + judged
    assert {s["metadata"]["view"] for s in lines(out / "train.jsonl")} == {"qa", "reverse_qa"}

    off = tmp_path / "off"
    run_generate(taxonomy, off, recipe(facts="off"), leaves=_knowledge(taxonomy), teacher=teacher, progress=False)
    assert not (off / "facts.jsonl").exists()
    assert "facts" not in json.loads((off / "manifest.json").read_text())["files"]
    assert not any("view" in s["metadata"] for s in lines(off / "train.jsonl"))


def test_preview_in_facts_mode_shows_one_chunk(taxonomy: Path, tmp_path: Path):
    cfg = recipe(facts="teacher", chunk_tokens=40, aux_tasks=[])
    results = preview_generate(taxonomy, tmp_path / "preview", cfg, leaves=_knowledge(taxonomy))
    samples = [r for r in results if r["kind"] == "sample"]
    assert samples and len({s["metadata"]["chunk_id"] for s in samples}) == 1
    assert {s["metadata"]["view"] for s in samples} >= {"qa", "paraphrase"}
    assert not (tmp_path / "preview" / "facts.jsonl").exists()


def test_question_view_answers_each_question_with_its_fact(taxonomy: Path, tmp_path: Path):
    """`views.question`: the teacher writes only a question for a fact, the fact is the answer; replies without
    a question are rejected by reason, and every fact with a usable question keeps one Q&A."""
    from graftlm.config.generate import ViewsConfig

    out = tmp_path / "gen"
    teacher = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    views = ViewsConfig(qa=0, question=1, reverse_qa=0, paraphrase=0, relations=0, rewrites=())
    cfg = recipe(facts="sentences", views=views, aux_tasks=(), samples_per_leaf=2, eval_generated_share=0.0,
                 eval_selection_share=0.0)
    run_generate(taxonomy, out, cfg, leaves=_knowledge(taxonomy), teacher=teacher, progress=False)

    facts = {f["fact_id"]: f["text"] for f in lines(out / "facts.jsonl")}
    train = [Sample.from_json(d) for d in lines(out / "train.jsonl")]
    asked = [p for p in teacher.prompts if p.startswith("Here is a fact about")]
    assert len(asked) == len(facts) == len(DOC_SENTENCES)  # one request per fact, no other view asked
    assert train and {s.metadata["view"] for s in train} == {"question"}
    for s in train:
        question, answer = s.messages[1]["content"], s.messages[2]["content"]
        assert question.endswith("?") and answer == facts[s.metadata["fact_ids"][0]] and not s.unmask
    assert len({s.metadata["fact_ids"][0] for s in train}) == len(train) > 2  # above samples_per_leaf: one per fact
    manifest = json.loads((out / "manifest.json").read_text())
    acc = next(iter(manifest["leaves"].values()))
    assert acc["rejected"]["question"]["no_question"] >= 1
    assert acc["coverage"]["by_view"] == {"question": len(train)}
    assert acc["generated"] == sum(sum(r.values()) for r in acc["rejected"].values()) + acc["duplicates"] + \
        acc["eval_generated"] + acc["kept"]


def test_cloze_view_needs_no_teacher_and_keeps_every_question(taxonomy: Path, tmp_path: Path):
    """`views.cloze`: questions made from each fact's own sentence, with no teacher request, each answered by
    its fact; no cap cuts them (samples_per_leaf is 1)."""
    from graftlm.config.generate import ViewsConfig
    from graftlm.generate.cloze import cloze_questions

    out = tmp_path / "gen"
    teacher = RecordingTeacher(FakeTeacher([fake_responses.respond]))
    views = ViewsConfig(qa=0, question=0, cloze=2, reverse_qa=0, paraphrase=0, relations=0, rewrites=())
    cfg = recipe(facts="sentences", views=views, aux_tasks=(), samples_per_leaf=1, eval_generated_share=0.0,
                 eval_selection_share=0.0)
    run_generate(taxonomy, out, cfg, leaves=_knowledge(taxonomy), teacher=teacher, progress=False)

    assert teacher.prompts == []
    facts = lines(out / "facts.jsonl")
    train = [Sample.from_json(d) for d in lines(out / "train.jsonl")]
    by_fact = {f["fact_id"]: [s.messages[1]["content"] for s in train if s.metadata["fact_ids"] == [f["fact_id"]]]
               for f in facts}
    assert {s.metadata["view"] for s in train} == {"cloze"} and all(not s.unmask for s in train)
    hollin = next(f for f in facts if f["text"] == "Hollin was founded in 1312 by salt traders.")
    assert by_fact[hollin["fact_id"]] == ["Hollin was founded in what year by salt traders?"]
    bridge = next(f for f in facts if f["text"].startswith("The second town is Marrow Bend"))
    assert by_fact[bridge["fact_id"]] == cloze_questions(bridge["text"], None, 2, {"Brindle", "Valley"})
    assert len(by_fact[bridge["fact_id"]]) == 2  # one per part: the year and the name
    long = next(f for f in facts if f["text"] == "It is 48 kilometres long.")  # asked after the sentence before
    assert by_fact[long["fact_id"]] == [
        "The Brindle Valley is a fictional valley in the north of the Karsk Mountains. It is how many kilometres long?"]
    for s in train:
        assert s.messages[2]["content"] == next(f["text"] for f in facts if f["fact_id"] == s.metadata["fact_ids"][0])
    manifest = json.loads((out / "manifest.json").read_text())
    acc = next(iter(manifest["leaves"].values()))
    assert acc["coverage"]["by_view"] == {"cloze": len(train)} and len(train) > len(facts) / 2
