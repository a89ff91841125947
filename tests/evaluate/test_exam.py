"""Bring your own exam (`graft eval --questions`), the open-book bound and its share of the gap closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graftlm.cli import main
from graftlm.config import recipe_from_dict
from graftlm.errors import InputError
from graftlm.evaluate.exam import load_exam
from graftlm.evaluate.openbook import plan_passages
from graftlm.evaluate.run import run_eval
from graftlm.evaluate.stats import gap_closed
from graftlm.records import EvalItem

from .eval_helpers import CHUNKS, KNOWLEDGE_LEAF

EXAM = [
    {"question": "How many members has the Lantern Council?", "answer": "It has 27 elected members.",
     "keywords": ["27"], "leaf": "government"},
    {"question": "Who is the current Warden?", "answer": "Ilse Marrow.", "leaf": "government",
     "context": CHUNKS[2]},
    {"question": "How long is the Silt River?", "answer": "The Silt River runs for 64 kilometres."},
    {"question": "How tall is Mount Tarrow?", "answer": "Mount Tarrow rises to 1,377 metres."},
]


def write_exam(path: Path, rows: list[dict[str, object]] = EXAM) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_documents(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(CHUNKS):
        (folder / f"part{i}.md").write_text(text, encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # not a document: ignored
    return folder


@pytest.mark.parametrize(("line", "field", "message"), [
    ('{"question": "Q?", "answer": "A"', None, "not valid JSON"),
    ('["Q?", "A"]', None, "expected a JSON object"),
    ('{"question": "Q?"}', "answer", "missing field 'answer'"),
    ('{"question": "Q?", "answer": "A", "keywords": "27"}', "keywords", "must be a non-empty list"),
    ('{"question": "  ", "answer": "A"}', "question", "must be a non-empty string"),
    ('{"question": "Q?", "answer": "A", "hint": "x"}', "hint", "unknown field 'hint'"),
])
def test_a_bad_exam_line_names_file_line_and_field(tmp_path: Path, line: str, field: str | None,
                                                   message: str) -> None:
    path = tmp_path / "exam.jsonl"
    path.write_text('{"question": "Fine?", "answer": "Yes."}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_exam(path)
    assert e.value.location is not None and e.value.location.file == str(path) and e.value.location.line == 3
    assert e.value.location.field == field and message in e.value.message and e.value.hint


def test_graft_eval_reports_a_bad_exam_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "exam.jsonl"
    path.write_text('{"question": "Q?", "answer": "A"}\n{"question": "Q2?"}\n', encoding="utf-8")
    rc = main(["eval", "fake", "--questions", str(path), "--out", str(tmp_path / "o"), "--no-judge"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{path}:2: answer" in err and "Traceback" not in err
    assert main(["eval", "fake", "--out", str(tmp_path / "o")]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_exam_items_keep_keywords_context_and_leaf(tmp_path: Path) -> None:
    items = load_exam(write_exam(tmp_path / "exam.jsonl"))
    assert [it.leaf for it in items] == ["government", "government", "exam", "exam"]
    assert items[0].metadata["keywords"] == ["27"] and items[1].context == CHUNKS[2]
    assert all(it.leaf_type == "knowledge" and it.source == "exam" for it in items)
    dup = tmp_path / "dup.jsonl"
    write_exam(dup, [EXAM[2], EXAM[2]])
    with pytest.raises(InputError, match="the same question is on line 1"):
        load_exam(dup)


def test_open_book_passages_come_from_the_source_then_retrieval(tmp_path: Path) -> None:
    chunks = {KNOWLEDGE_LEAF: [{"chunk_id": f"c{i}", "text": t} for i, t in enumerate(CHUNKS)]}
    items = [
        EvalItem("a", KNOWLEDGE_LEAF, "knowledge", "Q?", "A", metadata={"chunk_id": "c1"}),
        EvalItem("b", KNOWLEDGE_LEAF, "knowledge", "Q?", "A", context="given passage"),
        EvalItem("c", KNOWLEDGE_LEAF, "knowledge", "Q?", "A", metadata={"seed_context": "seed passage"}),
        EvalItem("d", KNOWLEDGE_LEAF, "knowledge", "Who is the current Warden?", "Ilse Marrow"),
        EvalItem("e", "skills", "freeform_skill", "Write a haiku.", "..."),
        *load_exam(write_exam(tmp_path / "exam.jsonl"))[2:3],
    ]
    got = plan_passages(items, chunks)
    assert (got["a"].text, got["a"].how) == (CHUNKS[1], "chunk")
    assert (got["b"].text, got["b"].how) == ("given passage", "context")
    assert (got["c"].text, got["c"].how) == ("seed passage", "seed context")
    assert (got["d"].text, got["d"].how) == (CHUNKS[2], "retrieved")  # the Government chunk names the Warden
    assert "e" not in got
    exam_id = items[-1].id
    assert got[exam_id].how == "retrieved" and "Silt River" in got[exam_id].text
    from_docs = plan_passages(items[-1:], {}, ["The Silt River runs far.", "Puffins nest."])
    assert from_docs[exam_id].text == "The Silt River runs far."
    assert plan_passages(items[-1:], {}) == {}  # nothing to search: no open-book answer


def test_share_of_the_gap_closed() -> None:
    g = gap_closed([0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6], [1.0, 1.0, 1.0, 1.0], n_boot=200)
    assert g.share == pytest.approx((0.55 - 0.1) / (1.0 - 0.1)) and g.n == 4 and g.clusters == 4 and g.ci is not None
    assert g.ci[0] <= g.share <= g.ci[1]
    none = gap_closed([0.5, 0.5], [0.9, 0.9], [0.5, 0.4])
    assert none.share is None and none.note and "no gap to close" in none.note
    one = gap_closed([0.0], [0.5], [1.0])
    assert one.share == 0.5 and one.ci is None


def test_identical_models_are_not_significant_on_any_metric_or_leaf(generate_dir: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict({"teacher": {"model": "fake"},
                               "eval": {"mt_bench_questions": 2, "bootstrap_samples": 200,
                                        "questions": str(write_exam(tmp_path / "exam.jsonl"))}})
    out = run_eval("fake", generate_dir, tmp_path / "eval", recipe, base_model="fake")
    scores = json.loads((out / "scores.json").read_text())
    assert scores["exam"]["leaves"].keys() == {"government", "exam"}
    sections = [scores["leaves"], scores["exam"]["leaves"]]
    diffs = [(leaf, metric, e["diff"]) for leaves in sections for leaf, block in leaves.items()
             for metric, e in block["evaluators"].items() if "diff" in e]
    diffs.append(("retention", "mt_bench", scores["retention"]["mt_bench"]["diff"]))
    assert len(diffs) >= 12
    for leaf, metric, d in diffs:
        assert d["diff"] == 0 and d["verdict"] == "not significant", (leaf, metric, d)
    assert scores["multiple_comparisons"]["comparisons"] == len(diffs) - 1
    for leaves in sections:
        for block in leaves.values():
            assert block["verdict"]["answer"] in ("not significant", "not evaluated")
    knowledge = scores["leaves"][KNOWLEDGE_LEAF]
    assert knowledge["clusters"] >= 1 and "open_book" in knowledge["evaluators"]["fact_recall"]
    assert "gap_closed" in knowledge["evaluators"]["fact_recall"]


def test_graft_eval_with_an_exam_end_to_end(tmp_path: Path, tiny_model: Path) -> None:
    exam = write_exam(tmp_path / "exam.jsonl")
    docs = write_documents(tmp_path / "docs")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"teacher": {"device": "cpu"},
                                      "eval": {"max_new_tokens": 6, "bootstrap_samples": 100, "drift": False}}),
                      encoding="utf-8")
    out = tmp_path / "eval"
    env = {**os.environ, "GRAFTLM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    args = [sys.executable, "-m", "graftlm", "eval", str(tiny_model), "--questions", str(exam), "--documents",
            str(docs), "--base", str(tiny_model), "--out", str(out), "--recipe", str(recipe), "--no-judge",
            "--mt-bench", "0"]
    done = subprocess.run(args, env=env, text=True, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "exam: government" in done.stdout and "exam: exam" in done.stdout and "fact_recall" in done.stdout
    assert "share of the open-book gap closed (exam, fact recall" in done.stdout
    scores = json.loads((out / "scores.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["exam"] == 4 and manifest["counts"]["open_book"] == 4
    assert scores["leaves"] == {} and set(scores["exam"]["leaves"]) == {"government", "exam"}
    fr = scores["exam"]["leaves"]["exam"]["evaluators"]["fact_recall"]
    assert fr["trained"]["n"] == 2 and fr["open_book"]["n"] == 2 and "gap_closed" in fr
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    how = {r["question"]: r["open_book"]["how"] for r in rows}
    assert how[EXAM[1]["question"]] == "context" and how[EXAM[2]["question"]] == "retrieved"
    assert all(set(r["answers"]) == {"trained", "base", "open_book"} for r in rows)
    assert rows[0]["facts"]["basis"] == "keywords" and rows[0]["facts"]["facts"] == ["27"]
    # a rerun with the same inputs finds the evaluation complete and rewrites nothing
    mtime = (out / "manifest.json").stat().st_mtime_ns
    again = subprocess.run(args, env=env, text=True, capture_output=True, timeout=600, check=False)
    assert again.returncode == 0 and (out / "manifest.json").stat().st_mtime_ns == mtime
    assert "DEBUG" not in again.stderr


def test_report_shows_the_gap_closed_the_exam_and_clusters(generate_dir: Path, tmp_path: Path) -> None:
    from graftlm.report import eval_table, run_report

    recipe = recipe_from_dict({"teacher": {"model": "fake"},
                               "eval": {"mt_bench_questions": 0, "bootstrap_samples": 100, "use_judge": False,
                                        "questions": str(write_exam(tmp_path / "exam.jsonl"))}})
    run = tmp_path / "run"
    run_eval("fake", generate_dir, run / "eval", recipe, base_model="fake")
    scores = json.loads((run / "eval" / "scores.json").read_text())
    rows = eval_table(scores)
    gap_rows = [r for r in rows if r[1] == "fact_recall, open book"]
    assert {r[0] for r in gap_rows} == {KNOWLEDGE_LEAF, "exam: government", "exam: exam"}
    assert all(r[5].startswith("gap closed") for r in gap_rows)
    report = (run_report(run) / "report.md").read_text()
    assert "Share of the open-book gap closed** on held-out knowledge questions" in report
    assert "Share of the open-book gap closed** on your exam" in report
    assert "**exam: government**" in report and "Holm" in report and "source clusters" in report


def test_the_example_exam_loads_and_its_facts_are_in_the_example_documents() -> None:
    from graftlm.config import load_recipe
    from graftlm.evaluate.facts import fact_recall

    root = Path(__file__).resolve().parents[2]
    items = load_exam(root / "examples" / "exams" / "vescary.jsonl")
    document = "\n".join((root / "examples" / p).read_text(encoding="utf-8")
                         for p in ("documents/vescary.md", "pdf_source/vescary-economy-and-culture.txt"))
    assert len(items) >= 30 and {it.leaf for it in items} == {"knowledge/geography/islands/vescary"}
    for it in items:
        recall = fact_recall(document, it.answer, question=it.question, keywords=it.metadata.get("keywords"))
        assert recall.score == 1.0 and recall.basis != "content words", (it.question, recall)
    demo = load_recipe(root / "recipes" / "cpu-demo.yaml")
    assert demo.eval.questions == "examples/exams/vescary.jsonl" and demo.eval.documents == "examples/documents"


def test_graft_run_checks_the_recipe_exam_before_any_work(tmp_path: Path) -> None:
    from graftlm.errors import ConfigError
    from graftlm.run import load_run_context

    root = Path(__file__).resolve().parents[2]
    bad = tmp_path / "exam.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A", "keywords": []}\n', encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"teacher": {"model": "fake"}, "train": {"student": "fake"},
                                      "eval": {"questions": str(bad)}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="eval.questions: 'keywords' must be") as e:
        load_run_context(root / "examples" / "taxonomy", recipe, tmp_path / "run")
    assert e.value.location is not None and e.value.location.line == 1 and e.value.location.field == "keywords"
    assert not (tmp_path / "run").exists()
