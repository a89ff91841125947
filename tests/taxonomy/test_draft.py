"""`graft taxonomy draft`: the pure parts (sections, contexts, outline, grounding, placeholders), drafts from
the example taxonomy's documents with the fake teacher that validate and that `graft run --dry-run` accepts,
placeholders that fail validation when the teacher writes nothing usable, and skill drafts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from graftlm.cli import main
from graftlm.errors import InputError
from graftlm.generate.questions import find_question
from graftlm.taxonomy.draft import (
    CONTEXT_WORDS,
    SEEDS,
    Section,
    check_leaf,
    document_outline,
    draft_knowledge,
    draft_skill,
    fill_context,
    grounded,
    grounded_pairs,
    knowledge_qna,
    lead_sections,
    parse_example,
    pick_contexts,
    read_examples,
    sentence_pair,
    sentences,
    split_sections,
    spread,
    windows,
)
from graftlm.taxonomy.model import QA
from graftlm.taxonomy.placeholder import find_placeholders, placeholder
from graftlm.taxonomy.validate import validate_file
from tests.needs import missing

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "documents"
LEAF = "knowledge/geography/islands/vescary"

DOC = """---
title: front matter is not text
---
# Harbours of Lune

Lune has three harbours. They were all built in the nineteenth century by the Lune Harbour Board.

```
code is never a context
```

## North Harbour

| table | row |
The North Harbour is the oldest. It opened in 1821 and holds forty fishing boats.
Its lighthouse is red.

It is sheltered by a long stone wall that was finished in 1840 after a storm.
"""


def test_split_sections_by_headings_without_code_or_tables() -> None:
    from graftlm.taxonomy.documents import extract_text

    path = Path("x.md")
    secs = split_sections(extract_text_of(DOC, path, extract_text), "x.md")
    assert [s.heading for s in secs] == ["Harbours of Lune", "North Harbour"]
    assert secs[1].paragraphs == ("The North Harbour is the oldest. It opened in 1821 and holds forty fishing boats. "
                                  "Its lighthouse is red.",
                                  "It is sheltered by a long stone wall that was finished in 1840 after a storm.")
    assert "code" not in " ".join(secs[0].paragraphs) and all(s.source == "x.md" for s in secs)
    plain = split_sections("First paragraph here.\n\nSecond one.\n")
    assert [(s.heading, s.paragraphs) for s in plain] == [("", ("First paragraph here.",)), ("", ("Second one.",))]


def extract_text_of(text: str, path: Path, extract: object) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / path.name
        p.write_text(text)
        return extract(p, "markdown")  # type: ignore[operator]


def _sentence(i: int, words: int = 10) -> str:
    return " ".join(["Word"] + [f"w{i}x{j}" for j in range(words - 1)]) + "."


def test_windows_keep_whole_sentences_under_the_limits() -> None:
    section = Section("H", (" ".join(_sentence(i) for i in range(30)),))
    pieces = windows(section, target=40)
    assert len(pieces) == 7 and all(30 <= len(p.split()) <= 40 for p in pieces[:-1])
    assert all(p.endswith(".") and p.startswith("Word") for p in pieces)
    assert " ".join(pieces) == " ".join(_sentence(i) for i in range(30))  # nothing dropped or split
    too_long = Section("H", (_sentence(0, CONTEXT_WORDS + 5) + " " + _sentence(1, 30),))
    assert windows(too_long) == [_sentence(1, 30)]
    assert windows(Section("H", ("Too short.",))) == []


def test_contexts_spread_over_the_sections() -> None:
    assert spread(9, 5) == [0, 2, 4, 6, 8] and spread(3, 5) == [0, 1, 2] and spread(4, 1) == [0]
    many = [Section(f"S{i}", (" ".join(_sentence(i * 10 + j) for j in range(4)),)) for i in range(9)]
    picked = pick_contexts(many)
    assert [c.heading for c in picked] == ["S0", "S2", "S4", "S6", "S8"]
    few = [Section(f"S{i}", (" ".join(_sentence(i * 100 + j) for j in range(40)),)) for i in range(2)]
    picked = pick_contexts(few)
    assert len(picked) == SEEDS and {c.heading for c in picked} == {"S0", "S1"}
    assert len({c.text for c in picked}) == SEEDS
    assert all(len(c.text.split()) < CONTEXT_WORDS for c in picked)
    short = [Section("S", (" ".join(_sentence(j) for j in range(12)),))]  # 120 words: one piece of 120
    assert len(pick_contexts(short)) == 4  # cut into pieces of 30 words instead


def test_a_markdown_documents_lead_is_a_context_only_when_the_rest_is_too_short() -> None:
    body = "\n\n".join(f"## Part {i}\n\n" + " ".join(_sentence(i * 10 + j) for j in range(4)) for i in range(6))
    doc = "# Title\n\n" + " ".join(_sentence(900 + j) for j in range(4)) + "\n\n" + body
    sections = split_sections(doc, "d.md")
    assert [s.level for s in sections] == [1, 2, 2, 2, 2, 2, 2]
    assert lead_sections(sections) == {0}
    assert "Title" not in [c.heading for c in pick_contexts(sections)]
    short = split_sections(doc.split("## Part 2")[0], "d.md")  # the lead and two parts: too few without it
    assert "Title" in [c.heading for c in pick_contexts(short)]
    assert lead_sections(split_sections("# Only\n\nOne section. Of text here.", "e.md")) == set()


def test_pdf_text_headings() -> None:
    text = "Vescary: Economy and Culture\nIntro line one.\nCurrency\nThe currency is the vesk.\nof the island\n"
    secs = split_sections(text, plain=True)
    assert [s.heading for s in secs] == ["Vescary: Economy and Culture", "Currency"]
    assert secs[1].paragraphs == ("The currency is the vesk. of the island",)
    assert [s.heading for s in split_sections(text)] == [""]


def test_outline_names_the_title_and_sections() -> None:
    secs = [Section("Vescary", ("a",)), Section("History", ("b",)), Section("Food", ("c",))]
    assert document_outline(secs, ["vescary"]) == "Vescary: History, Food"
    assert document_outline([Section("", ("x",))], ["notes"]) == "notes"


def test_grounding_keeps_answers_from_the_context() -> None:
    context = "The capital of Vescary is Port Anselm, on the south coast. About 24,000 people live there."
    assert grounded(QA("What is the capital?", "The capital is Port Anselm."), context)
    assert not grounded(QA("What is the capital?", "Paris, the city of light and romance."), context)
    taken: set[str] = set()
    text = ("Question: What is the capital of Vescary?\nAnswer: Port Anselm is the capital.\n\n"
            "Question: Who founded it?\nAnswer: A Roman emperor in antiquity.\n\n"
            "Question: What is the capital of Vescary?\nAnswer: Port Anselm.")
    keep, rejects = grounded_pairs(text, context, taken)
    assert [qa.answer for qa in keep] == ["Port Anselm is the capital."]
    assert "not_grounded" in rejects and ("repeated" in rejects or "repeated_in_answer" in rejects)


COUNCIL = ("Vescary is governed by the Lantern Council, which has 27 elected members. Elections to the Lantern "
           "Council are held every four years. The head of the Lantern Council is called the Warden.")
TOPIC = "The Isle of Vescary"


def test_find_question_where_a_small_teacher_puts_it() -> None:
    """Replies of the kind SmolLM2-135M writes to the per-sentence prompts."""
    replies = {
        'Question: "What is the capital of Vescary?"\n\nThe answer is "Vescary" in this case.':
            "What is the capital of Vescary?",
        "What is the answer to the question: Which is the second largest town in the Isle of Vescary?":
            "Which is the second largest town in the Isle of Vescary?",
        '2. "Can you provide a specific example of a country that has a population of 61,300?"':
            "Can you provide a specific example of a country that has a population of 61,300?",
        "24,000 people live here. Question: How many people live in Port\n  Anselm?": None,  # split by a line
        "What is this?": None,  # too short
        "Elections are held every four years.": None,
        "": None,
    }
    for reply, expected in replies.items():
        assert find_question(reply) == expected, reply


def test_sentence_replies_become_teacher_or_extractive_pairs_or_reasons() -> None:
    members, elections, warden = sentences(COUNCIL)
    cases = [
        ("Question: How many members does the Lantern Council have?\nAnswer: 27.", members,
         (QA("How many members does the Lantern Council have?", "27."), "teacher")),
        ("Question: How often are elections held? Answer: Every four years.", elections,
         (QA("How often are elections held?", "Every four years."), "teacher")),
        # an answer from outside the sentence, or one that only repeats the question: the sentence answers
        ("What is the answer to the question: How often are elections to the Lantern Council held?\n"
         "Answer: Every Sunday in the cathedral of Rome.", elections,
         (QA("How often are elections to the Lantern Council held?", elections), "extractive")),
        ("Question: How many members does the Lantern Council have?\nAnswer: It has 27 members, with 11 more",
         members, (QA("How many members does the Lantern Council have?", members), "extractive")),
        ("Question: What is the head of the Lantern Council called?\nAnswer: The head of the Lantern Council is",
         warden, (QA("What is the head of the Lantern Council called?", warden), "extractive")),  # cut off
        ("Question: What is the head of the Lantern Council called?\nAnswer: The head of the Lantern Council.",
         warden, (QA("What is the head of the Lantern Council called?", warden), "extractive")),
        ('Question: "What is the capital of France?"\n\nAnswer: Paris', elections, (None, "not_about_the_sentence")),
        ("How many members does the island of Vescaria have in Brussels?", members, (None, "not_grounded")),
        ("What is the answer based on the given sentence about the Warden?", warden, (None, "about_the_text")),
        ("Is the head of the Lantern Council called the Warden?", warden, (None, "answer_in_question")),
        ("The Warden leads the council.", warden, (None, "no_question")),
    ]
    for reply, sentence, expected in cases:
        assert sentence_pair(reply, sentence, COUNCIL, TOPIC) == expected, reply
    island = "The Isle of Vescary is a fictional island in the Merrow Sea."
    assert sentence_pair("Where is the Isle of Vescary?", island, island, TOPIC) == (
        QA("Where is the Isle of Vescary?", island), "extractive")
    assert sentence_pair("Where is the Isle of Vescary?", members, COUNCIL, TOPIC) == (None, "not_about_the_sentence")
    made_up = "Everything in this document is made up."  # a sentence about the text may be asked about it
    assert sentence_pair("What is made up in this document?", made_up, made_up, TOPIC) == (
        QA("What is made up in this document?", made_up), "extractive")


def test_fill_context_prefers_teacher_pairs_one_per_sentence_and_no_repeats() -> None:
    sents = sentences(COUNCIL)
    have = [QA("How many members has the Lantern Council?", "It has 27 elected members.")]  # sentence 0
    cands = [
        (0, QA("How many elected members are there?", sents[0]), "extractive"),  # sentence 0 is answered
        (1, QA("How often are elections held?", sents[1]), "extractive"),
        (2, QA("What is the head of the council called?", sents[2]), "extractive"),
        (2, QA("What is the head of the council called?", "The Warden."), "teacher"),
        (1, QA("When are elections to the Lantern Council?", "Every four years."), "teacher"),
    ]
    taken = {"often elections held"}
    chosen = fill_context(have, cands, sents, taken)
    assert chosen == [(QA("What is the head of the council called?", "The Warden."), "teacher"),
                      (QA("When are elections to the Lantern Council?", "Every four years."), "teacher")]
    assert {"head council called", "elections lantern council"} <= taken
    assert fill_context(have + [qa for qa, _ in chosen], cands, sents, set()) == []  # already three
    again = [(0, QA("How many elected members are there?", sents[0]), "extractive"),
             (0, QA("Who governs Vescary?", "The Lantern Council."), "teacher")]  # sentence 0 again, a new answer
    assert fill_context(have, again, sents, set()) == [(QA("Who governs Vescary?", "The Lantern Council."), "teacher")]
    repeated = [(1, QA("How often are elections held?", sents[1]), "extractive")]
    assert fill_context(have, repeated, sents, {"often elections held"}) == []


def test_examples_and_leaf_names_are_checked(tmp_path: Path) -> None:
    assert parse_example("Close the door. => Could you please close the door?") == QA(
        "Close the door.", "Could you please close the door?")
    with pytest.raises(InputError, match="QUESTION => ANSWER"):
        parse_example("no arrow here")
    assert check_leaf("knowledge/a/b/", "knowledge") == ("knowledge", "a", "b")
    for bad in ("a/b", "knowledge", "knowledge/../etc", "compositional_skills/x"):
        with pytest.raises(InputError, match="not a knowledge leaf path"):
            check_leaf(bad, "knowledge")
    cases = [("ex.yaml", "- question: Sit down.\n  answer: Could you please sit down?\n",
              [QA("Sit down.", "Could you please sit down?")]),
             ("ex.yaml", "- just a string\n", "item 0"),
             ("ex.txt", "Question: Wait here please.\nAnswer: Could you please wait here?\n",
              [QA("Wait here please.", "Could you please wait here?")]),
             ("ex.txt", "Question: Wait here please.\nAnswer: Yes.\nQuestion: Sit.\nAnswer: No.\n", "'Sit.' (too short)")]
    for name, text, expected in cases:
        f = tmp_path / name
        f.write_text(text)
        if isinstance(expected, str):
            with pytest.raises(InputError) as e:
                read_examples(f)
            assert expected in str(e.value)
        else:
            assert read_examples(f) == expected


def test_placeholders_fail_validation_with_their_instruction(tmp_path: Path) -> None:
    data = knowledge_qna(created_by="me", domain="Geo", outline="An island.", contexts=[], pairs=[],
                         document={"repo": "https://example.com/r.git", "commit": "abc1234", "patterns": ["*.md"]})
    assert len(find_placeholders(data)) == SEEDS * 7
    assert find_placeholders({"a": [placeholder("write X")]}) == [(("a", 0), "write X")]
    leaf = tmp_path / "knowledge" / "geo" / "leaf"
    leaf.mkdir(parents=True)
    (leaf / "qna.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    report = validate_file(leaf / "qna.yaml")
    assert not report.valid and len(report.errors) == SEEDS * 7  # unique placeholders: no uniqueItems errors
    first = report.errors[0]
    assert first.field == "seed_examples[0].context" and first.line > 1
    assert "placeholder left by `graft taxonomy draft`: paste a passage" in first.message


@pytest.fixture
def vescary_md(tmp_path: Path) -> Path:
    """The example taxonomy's Markdown document, outside any git repository."""
    docs = tmp_path / "incoming"
    docs.mkdir()
    return Path(shutil.copy(EXAMPLES / "vescary.md", docs / "vescary.md"))


def test_fake_teacher_draft_validates_and_graft_run_accepts_it(vescary_md: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    tax = tmp_path / "taxonomy"
    assert main(["taxonomy", "draft", str(vescary_md), "--leaf", LEAF, "--out", str(tax), "--teacher", "fake",
                 "--created-by", "tester"]) == 0
    out = capsys.readouterr().out
    qna = tax / LEAF / "qna.yaml"
    assert f"wrote {qna}" in out and "created the local repository" in out and "the draft validates" in out
    data = yaml.safe_load(qna.read_text())
    assert data["created_by"] == "tester" and data["domain"] == "Geography"
    assert data["document_outline"].startswith("The Isle of Vescary: Geography, People and towns, History")
    text = " ".join(vescary_md.read_text().split())
    contexts = [s["context"] for s in data["seed_examples"]]
    assert len(contexts) == SEEDS and all(c in text for c in contexts)  # verbatim from the document
    for seed in data["seed_examples"]:
        assert len(seed["questions_and_answers"]) == 3
        assert all(qa["answer"] in seed["context"] for qa in seed["questions_and_answers"])
    repo = (qna.parent / data["document"]["repo"]).resolve()
    assert repo == (tmp_path / "taxonomy-documents" / "geography-islands-vescary-repo").resolve()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert data["document"]["commit"] == head and data["document"]["patterns"] == ["vescary.md"]

    assert main(["taxonomy", "validate", str(tax)]) == 0
    code = main(["run", str(tax), "--recipe", str(ROOT / "recipes" / "cpu-demo.yaml"), "--out",
                 str(tmp_path / "run"), "--dry-run", "--set", "teacher.model=fake"])
    plan = capsys.readouterr().out
    assert code == 0 and "knowledge->geography->islands->vescary" in plan

    # Drafting again refuses to overwrite; --force redoes it with the same repository and commit.
    with pytest.raises(InputError, match="exists"):
        draft_knowledge([vescary_md], LEAF, tax, teacher="fake", progress=False)
    again = draft_knowledge([vescary_md], LEAF, tax, teacher="fake", force=True, progress=False)
    assert yaml.safe_load(again.path.read_text())["document"] == data["document"]


def test_pdf_document_draft_validates(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    pdf = Path(shutil.copy(EXAMPLES / "vescary-economy-and-culture.pdf", tmp_path / "economy.pdf"))
    result = draft_knowledge([pdf], "knowledge/economy/vescary", tmp_path / "tax", teacher="fake", progress=False)
    assert validate_file(result.path).valid and result.placeholders == 0


def test_documents_already_in_git_are_pinned_at_head(tmp_path: Path) -> None:
    repo = tmp_path / "docs"
    repo.mkdir()
    shutil.copy(EXAMPLES / "vescary.md", repo / "vescary.md")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "docs"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    result = draft_knowledge([repo / "vescary.md"], LEAF, tmp_path / "tax", teacher="fake", progress=False)
    doc = yaml.safe_load(result.path.read_text())["document"]
    assert doc == {"repo": str(repo.resolve()), "commit": head, "patterns": ["vescary.md"]}
    assert not (tmp_path / "tax-documents").exists() and "committed in the git repository" in result.notes[0]
    assert validate_file(result.path).valid


def test_a_teacher_that_writes_nothing_usable_leaves_failing_placeholders(
        vescary_md: Path, tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The tiny random model writes no grounded Q&A: every Q&A is a placeholder and the command exits 1."""
    tax = tmp_path / "tax"
    code = main(["taxonomy", "draft", str(vescary_md), "--leaf", LEAF, "--out", str(tax), "--teacher", str(tiny_model)])
    captured = capsys.readouterr()
    assert code == 1
    assert "placeholder left by `graft taxonomy draft`: write question 1 of context 1" in captured.out
    assert "placeholder(s) left" in captured.err and "Traceback" not in captured.err
    data = yaml.safe_load((tax / LEAF / "qna.yaml").read_text())
    assert all(s["context"] in " ".join(vescary_md.read_text().split()) for s in data["seed_examples"])
    assert main(["taxonomy", "validate", str(tax)]) == 1


def test_skill_draft_with_the_fake_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tax = tmp_path / "tax"
    leaf = "compositional_skills/writing/polite"
    assert main(["taxonomy", "draft", "--skill", "Turn a blunt command into a polite request", "--leaf", leaf,
                 "--out", str(tax), "--teacher", "fake",
                 "--example", "Close the door. => Could you please close the door?",
                 "--example", "Send the file. => Could you please send the file?"]) == 0
    data = yaml.safe_load((tax / leaf / "qna.yaml").read_text())
    assert data["task_description"] == "Turn a blunt command into a polite request"
    seeds = data["seed_examples"]
    assert len(seeds) == SEEDS and seeds[0] == {"question": "Close the door.", "answer": "Could you please close the door?"}
    assert len({s["question"] for s in seeds}) == SEEDS and not find_placeholders(data)
    assert main(["taxonomy", "validate", str(tax)]) == 0
    capsys.readouterr()
    assert main(["taxonomy", "draft", "--skill", "x", "--leaf", "compositional_skills/a/b", "--out", str(tax)]) == 2
    assert "needs at least one example" in capsys.readouterr().err


def test_skill_examples_alone_when_five_are_given(tmp_path: Path) -> None:
    examples = [QA(f"Make this polite: step {i}.", f"Could you please do step {i}?") for i in range(6)]
    result = draft_skill("Polite requests", examples, "compositional_skills/writing/p", tmp_path, teacher="fake",
                         progress=False)
    assert result.teacher_calls == 0 and "kept the first 5 of 6" in result.notes[0]
    assert validate_file(result.path).valid


@pytest.mark.real_model
def test_draft_with_the_embedded_model(vescary_md: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The embedded 135M as teacher, through the CLI: the whole-context prompt fills part of the Q&A, the
    per-sentence rounds most of the rest; every kept pair is grounded and every validation error is a
    placeholder to fill; a context the teacher cannot fill is swapped for a spare piece of the document, so
    the draft of vescary.md validates and `graft run` accepts it."""
    from graftlm.errors import ModelError
    from graftlm.models import resolve

    try:
        resolve("default")
    except ModelError as e:
        missing(f"embedded model not available: {e}")
    tax = tmp_path / "tax"
    code = main(["taxonomy", "draft", str(vescary_md), "--leaf", LEAF, "--out", str(tax), "--teacher", "default"])
    captured = capsys.readouterr()
    assert "Q&A drafted:" in captured.out and "Traceback" not in captured.err
    qna = tax / LEAF / "qna.yaml"
    report = validate_file(qna)
    assert code == (0 if report.valid else 1)
    assert all("placeholder left by" in e.message for e in report.errors)
    data = yaml.safe_load(qna.read_text())
    kept = [(qa, s["context"]) for s in data["seed_examples"] for qa in s["questions_and_answers"]
            if not qa["answer"].startswith("FILL IN:")]
    assert len(kept) >= 12 and len(find_placeholders(data)) == 2 * (SEEDS * 3 - len(kept))
    assert all(grounded(QA(qa["question"], qa["answer"]), context) for qa, context in kept)
    assert report.valid and code == 0, [e.message for e in report.errors]
    assert main(["run", str(tax), "--recipe", str(ROOT / "recipes" / "cpu-demo.yaml"), "--out",
                 str(tmp_path / "run"), "--dry-run"]) == 0
