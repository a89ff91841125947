"""The teacher-free `cloze` view's questions (`graftlm.generate.cloze`): one per number, date, month, quoted
term and name of a fact sentence, asked in place, the topic's own name never asked for; checked on the
example document's sentences and on the context sentences of the real community taxonomy corpus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from graftlm.generate.cloze import answer_spans, cloze_questions, opens_with_pronoun, topic_names
from graftlm.generate.facts import sentence_text, split_sentences

ROOT = Path(__file__).resolve().parents[2]
SKIP = topic_names("The Isle of Vescary")


@pytest.mark.parametrize(("sentence", "expected"), [
    ("The island covers 1,840 square kilometres and is shaped like a crescent that opens to the south.",
     ["The island covers how many square kilometres and is shaped like a crescent that opens to the south?"]),
    ("In 1874 the islanders built the Greywatch Lighthouse on the western cliffs.",
     ["In what year the islanders built the Greywatch Lighthouse on the western cliffs?",
      "In 1874 the islanders built what on the western cliffs?"]),
    ("Vescary became independent on 12 May 1921, when the Charter of Anselm was signed in Port Anselm.",
     ["Vescary became independent on what date, when the Charter of Anselm was signed in Port Anselm?",
      "Vescary became independent on 12 May 1921, when what was signed in Port Anselm?",
      "Vescary became independent on 12 May 1921, when the Charter of Anselm was signed in what?"]),
    ("Independence Day is celebrated every year on 12 May.",
     ["Independence Day is celebrated every year on what day?", "What is celebrated every year on 12 May?"]),
    ("The national flower is the ember lily, an orange lily that blooms in August.",
     ["The national flower is the ember lily, an orange lily that blooms in which month?"]),
    ('Vescari is a language written with the Latin alphabet, and it has no word for "hurry".',
     ["Vescari is a language written with the Latin alphabet, and it has no word for what?",
      'Vescari is a language written with what alphabet, and it has no word for "hurry"?', ]),
    ("Port Anselm has a small tram line that opened in 1909; its trams are painted dark green.",
     ["Port Anselm has a small tram line that opened in what year; its trams are painted dark green?",
      "What has a small tram line that opened in 1909; its trams are painted dark green?"]),
    ("Elections to the Lantern Council are held every four years.",
     ["Elections to the Lantern Council are held every how many years?", "Elections to what are held every four years?"]),
    ("The people of Vescary speak two languages: Vescari and English.",  # "Vescary" is the topic: not asked
     ["The people of Vescary speak how many languages: Vescari and English?",
      "The people of Vescary speak two languages: what and English?",
      "The people of Vescary speak two languages: Vescari and what?"]),
    ("Vescary has no railway.", []),
    # nothing named: "X is Y" asked as "What is X?", else from the first prepositional phrase on
    ("The main exports of Vescary are kelp paper, blue slate and smoked herring.",
     ["What are the main exports of Vescary?"]),
    ("Its water looks brown because of the peat around it.", ["Its water looks brown because of what?"]),
    ("The festival remembers the fishers who were lost at sea.",
     ["The festival remembers the fishers who were lost at what?"]),
    ("Everything in this document is made up.", []),
])
def test_cloze_questions_of_real_looking_sentences(sentence: str, expected: list[str]):
    assert cloze_questions(sentence, None, 5, SKIP) == expected
    assert cloze_questions(sentence, None, 1, SKIP) == expected[:1]  # numbers and dates are asked first


def test_a_pronoun_sentence_is_asked_after_the_sentence_before_it():
    before = "The longest river on the island is the Silt River."
    sentence = "It runs for 64 kilometres from the slopes of Mount Tarrow to the sea at Grellby."
    assert opens_with_pronoun(sentence) and not opens_with_pronoun(before)
    first = cloze_questions(sentence, before, 1, SKIP)
    assert first == [f"{before} It runs for how many kilometres from the slopes of Mount Tarrow to the sea at Grellby?"]
    assert cloze_questions(before, "Snow covers its summit.", 1, SKIP) == ["The longest river on the island is what?"]


def test_topic_names_are_the_capitalised_words_of_the_topic():
    assert topic_names("The Isle of Vescary") == {"Isle", "Vescary"}
    assert topic_names("") == set()


def _check(sentence: str) -> int:
    spans = answer_spans(sentence)
    starts = sorted((s.start, s.end) for s in spans)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(starts, starts[1:], strict=False)), sentence  # no two spans overlap
    questions = cloze_questions(sentence, None, len(spans))
    if not questions:  # only a sentence with markup (code, a table row, a link, a tag) is not asked about
        assert not spans or re.search(r"`|\||\]\(|<|\{", sentence), sentence
        return 0
    assert len(questions) == len(set(questions)) == len(spans), sentence
    for q, span in zip(questions, spans, strict=True):
        assert q.endswith("?") and q != sentence and span.ask.split()[-1].lower() in q.lower(), (sentence, q)
        asked = sentence[span.start:span.end]
        assert asked.lower() not in q.lower() or sentence.lower().count(asked.lower()) > 1 or len(asked) < 3, (sentence, asked, q)
    return len(questions)


def test_every_sentence_of_the_example_documents():
    made = 0
    for doc in (ROOT / "examples" / "documents" / "vescary.md",
                ROOT / "examples" / "pdf_source" / "vescary-economy-and-culture.txt"):
        text = doc.read_text(encoding="utf-8")
        made += sum(_check(sentence_text(text, s)) for s in split_sentences(text))
    assert made > 60


def test_context_sentences_of_the_real_corpus(corpus_dir: Path):
    """Contexts nobody on the team wrote: every cloze question is well formed, and most prose sentences with
    a figure get one."""
    sentences = []
    for path in sorted((corpus_dir / "instructlab-taxonomy" / "files" / "knowledge").rglob("qna.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        for seed in (data or {}).get("seed_examples") or []:
            context = seed.get("context") if isinstance(seed, dict) else None
            if isinstance(context, str):
                sentences += [sentence_text(context, s) for s in split_sentences(context)]
    assert len(sentences) > 100
    asked = [s for s in sentences if _check(s)]
    with_figure = [s for s in sentences if re.search(r"\d", s) and not re.search(r"`|\||\]\(|<|\{", s)]
    assert len([s for s in with_figure if s in asked]) >= 0.8 * len(with_figure)


def test_two_cloze_questions_of_one_fact_are_kept_though_they_look_alike():
    """Dedup would call the two month questions of one sentence near-duplicates; the select step keeps a cloze
    question whose only match is a question of the same fact, and still rejects one that matches another fact's."""
    from graftlm.config.generate import GenerateConfig
    from graftlm.generate.dedup import NearDuplicateIndex
    from graftlm.generate.run import _cloze_sibling

    sentence = "The average temperature is 17 degrees Celsius in July and 4 degrees Celsius in January."
    first, second = cloze_questions(sentence, None, 2, SKIP)
    index = NearDuplicateIndex(GenerateConfig().dedup_threshold)
    index.add("c1", first)
    hit = index.match(second)
    assert hit is not None and hit[0] == "c1"  # without the rule the second question would be dropped

    def cand(view: str, fact: str) -> dict:
        return {"metadata": {"view": view, "fact_ids": [fact]}}

    assert _cloze_sibling(cand("cloze", "f1"), "c1", {"c1": "f1"})
    assert not _cloze_sibling(cand("cloze", "f2"), "c1", {"c1": "f1"})  # another fact's question: a duplicate
    assert not _cloze_sibling(cand("question", "f1"), "c1", {"c1": "f1"})  # only cloze questions are exempt
    assert not _cloze_sibling(cand("cloze", "f1"), "seed:0", {"c1": "f1"})  # a seed match always rejects
