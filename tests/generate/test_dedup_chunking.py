"""Near-duplicate detection and structure-aware chunking."""

from __future__ import annotations

from collections import Counter

from graftlm.generate.chunking import blocks, chunk_document, chunk_text, tokenizer_counter, word_estimate
from graftlm.generate.dedup import NearDuplicateIndex, jaccard, shingles


def test_near_duplicates_found_and_distinct_kept():
    index = NearDuplicateIndex(0.7)
    index.add("a", "How would you explain the water cycle to a child?")
    index.add("b", "Write a limerick about a cat who loves lasagna.")
    hit = index.match("How would you explain the water cycle to a small child?")
    assert hit is not None and hit[0] == "a" and 0.7 <= hit[1] < 1.0
    assert index.match("how WOULD you explain the water cycle to a child") == ("a", 1.0)  # case, punctuation
    assert index.match("What are the main causes of inflation in Europe?") is None
    assert len(index) == 2


def test_threshold_is_respected():
    a, b = "What is the capital of France?", "What is the capital of Spain?"
    sim = jaccard(shingles(a), shingles(b))
    strict, loose = NearDuplicateIndex(sim + 0.01), NearDuplicateIndex(sim - 0.01)
    for idx in (strict, loose):
        idx.add("x", a)
    assert strict.match(b) is None
    assert loose.match(b) is not None


DOC = "\n".join([
    "# Title", "", "Intro paragraph with a few words.", "",
    "## Section A", "", " ".join(f"Sentence number {i} is about apples." for i in range(60)), "",
    "```", "code line one", "", "code line two", "```", "",
    "## Section B", "", "Short closing paragraph about pears.", "",
])


def test_blocks_keep_headings_and_code_fences():
    bs = blocks(DOC)
    assert (True, "# Title") in bs and (True, "## Section B") in bs
    assert (False, "```\ncode line one\n\ncode line two\n```") in bs


def test_chunks_respect_size_keep_all_words_and_start_at_headings():
    chunks = chunk_text(DOC, max_tokens=80)
    assert len(chunks) > 3
    assert all(word_estimate(c) <= 80 for c in chunks)
    assert Counter(" ".join(chunks).split()) == Counter(DOC.split())  # nothing lost, nothing repeated
    assert any(c.startswith("## Section A\n\nSentence number 0") for c in chunks)
    assert not any(c.rstrip().splitlines()[-1].startswith("#") for c in chunks)  # no dangling heading
    # the long paragraph is split at sentence ends, never inside a sentence
    for c in chunks:
        if "apples" in c:
            assert c.rstrip().endswith(".") or c.rstrip().endswith("```")


def test_giant_sentence_is_split_by_words():
    text = " ".join(["word"] * 1000)
    chunks = chunk_text(text, max_tokens=100)
    assert sum(len(c.split()) for c in chunks) == 1000
    assert all(word_estimate(c) <= 100 for c in chunks)


def test_chunk_ids_stable_and_tokenizer_counting(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    count = tokenizer_counter(tok)
    a = chunk_document("doc.md", "ab" * 32, DOC, 60, count)
    b = chunk_document("doc.md", "ab" * 32, DOC, 60, count)
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    assert all(c.tokens == count(c.text) for c in a)
    assert max(c.tokens for c in a) <= 60
    assert a[0].to_json("leaf")["doc_sha256"] == "ab" * 32
