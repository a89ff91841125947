"""bench/knowledge.py: its inputs load, its scoring is right, and a tiny run prints the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_bench import _load

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    return _load("knowledge")


def test_exam_and_handwritten_qa_load_and_differ(bench) -> None:  # type: ignore[no-untyped-def]
    exam = bench.read_qa_file(bench.EXAM, ("question", "keywords", "context"))
    written = bench.read_qa_file(bench.HANDWRITTEN, ("question", "answer", "fact"))
    assert len(exam) == 30 and len(written) >= 60
    assert len({r["fact"] for r in written}) == len(written)
    assert {r["doc"] for r in written} == {"vescary.md", "vescary-economy-and-culture"}
    # written from the documents, not copied from the exam
    assert not {r["question"].lower() for r in written} & {r["question"].lower() for r in exam}
    # every exam keyword is taught by some hand-written answer: the ceiling covers the exam's facts
    answers = " ".join(r["answer"] for r in written)
    assert all(bench.recall(answers, it) == 1.0 for it in exam)
    # and every exam passage is in the documents
    docs = " ".join(" ".join(p.read_text().split()) for p in bench.DOCUMENTS)
    assert all(" ".join(it["context"].split()) in docs for it in exam)


@pytest.mark.parametrize(("answer", "keywords", "expected"), [
    ("It covers 1840 square km.", ["1,840"], 1.0),
    ("The crossing takes five hours.", ["5 hours"], 1.0),
    ("Elections are every 4 years.", ["4"], 1.0),
    ("It was built in 1874.", ["4"], 0.0),  # a digit inside a number is not the number
    ("Tourism is 38% of the economy.", ["38 percent"], 1.0),
    ("They speak English.", ["Vescari", "English"], 0.5),
    ("The SILT RIVER.", ["Silt River"], 1.0),
    ("I do not know.", ["Merrow Sea"], 0.0),
])
def test_recall_is_the_evaluations_fact_recall_on_keywords(bench, answer: str, keywords: list[str],  # type: ignore[no-untyped-def]
                                            expected: float) -> None:
    assert bench.recall(answer, {"question": "What about Vescary?", "keywords": keywords}) == expected


def test_bad_exam_line_names_file_line_and_field(bench, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    exam = tmp_path / "exam.jsonl"
    exam.write_text(json.dumps({"question": "q", "keywords": ["a"], "context": "c"}) + "\n"
                    + json.dumps({"question": "q2", "keywords": [], "context": "c"}) + "\n")
    assert bench.main(["--exam", str(exam), "--out", str(tmp_path / "o")]) == 2
    assert f"{exam}:2: field `keywords`" in capsys.readouterr().err


def test_tiny_run_prints_one_table_and_resumes(bench, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from graftlm.testing.tiny import build_tiny_model

    student = build_tiny_model(tmp_path / "tiny")
    args = ["--student", str(student), "--out", str(tmp_path / "out"), "--epochs", "1", "--repeats", "1",
            "--exam-limit", "2", "--max-new-tokens", "3", "--threads", "1", "--rows", "baseline,pipeline-new",
            "--variants", '{"plain": {}, "kl": {"kl_to_base": 0.5}}', "--json", str(tmp_path / "r.json")]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("baseline")]
    assert rows == ["baseline/plain", "baseline/kl"]
    assert "pipeline-new: skipped (pass --pipeline-dir" in out
    result = json.loads((tmp_path / "r.json").read_text())
    first = result["results"][0]
    assert first["samples"] == 18 + len(bench.leaf_and_chunks(250)[1])  # seed Q&A + the documents' chunks
    assert first["ppl_base"] > 1 and first["train_s"] > 0 and len(first["answers"]) == 2
    assert result["results"][1]["config"]["kl_to_base"] == 0.5
    assert not (tmp_path / "out" / "train" / "baseline_plain" / "checkpoints").exists()
    # a rerun finds every row done: same table, nothing retrained
    stamp = (tmp_path / "out" / "rows" / "baseline_plain.json").stat().st_mtime_ns
    assert bench.main(args) == 0
    assert (tmp_path / "out" / "rows" / "baseline_plain.json").stat().st_mtime_ns == stamp
    assert "baseline/kl" in capsys.readouterr().out
    # --finished-only prints the finished rows and names the others, training nothing
    assert bench.main([*args[:-2], "--finished-only", "--variants", '{"plain": {}, "lower": {"learning_rate": 1e-5}}']) == 0
    out = capsys.readouterr().out
    assert "baseline/plain" in out and "baseline/lower: not finished yet" in out
    assert not (tmp_path / "out" / "train" / "baseline_lower").exists()


def test_pipeline_rows_take_the_leaf_samples_of_a_generate_folder(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from graftlm.artifacts import write_jsonl
    from tests.samples import sample

    leaf, chunks = bench.leaf_and_chunks(250)
    own = [sample(f"q{i}", "knowledge", 5) for i in range(12)]
    for s in own:
        s.metadata["leaf"] = leaf.name
    other = sample("elsewhere", "knowledge", 5)
    write_jsonl(tmp_path / "train.jsonl", [s.to_json() for s in [*own, other]])
    write_jsonl(tmp_path / "chunks.jsonl", chunks[:2])
    args = bench.parse_args(["--rows", "pipeline-old,pipeline-new", "--pipeline-dir", str(tmp_path),
                             "--document-ratio", "0.5"])
    data, notes = bench.datasets(args)
    assert notes == []
    assert sorted(s.id for s in data["pipeline-old"]) == sorted(s.id for s in own)
    new = data["pipeline-new"]
    documents = [s for s in new if s.metadata["task"] == "document"]
    assert len(new) == 12 + 6 and len(documents) == 6 and all(s.unmask for s in documents)
    assert {s.metadata["chunk_id"] for s in documents} == {c["chunk_id"] for c in chunks[:2]}
