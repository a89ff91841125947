"""The open-book bound: how well the base model answers a knowledge question with its source in the prompt.

Closed-book, a trained model can at best state what its documents say; the same base model reading the
passage is a practical ceiling for that (not a hard one: a trained model may beat it). For each knowledge
item the passage is, in order: the document chunk the item was generated from (`chunks.jsonl`), the item's
own `context` (exam files, held-out seed Q&A), the seed's context, or else the passage that BM25 (`bm25s`)
ranks first for the question among the leaf's chunks or the `--documents` given. The share of the gap
closed, (trained - base) / (open book - base), is in `stats.gap_closed`.

What this cannot see: a passage that does not hold the answer lowers the bound (the report says how each
passage was found); a base model that cannot read well makes the bound low and the share easy to close.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graftlm.errors import InputError
from graftlm.evaluate.judge import render
from graftlm.records import SYSTEM_PROMPT, EvalItem
from graftlm.teacher.base import Message

ROLE = "open_book"
"""The role under which the base model's open-book answers are stored and scored."""


@dataclass(frozen=True)
class Passage:
    text: str
    how: str
    """`chunk`, `context`, `seed context` or `retrieved`."""


class Retriever:
    """BM25 over a fixed list of passages (English stop words removed)."""

    def __init__(self, passages: Sequence[str]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self.passages = [p for p in passages if p.strip()]
        self._index = bm25s.BM25()
        if self.passages:
            self._index.index(bm25s.tokenize(self.passages, stopwords="en", show_progress=False),
                              show_progress=False)

    def best(self, query: str) -> str | None:
        """The passage ranked first for `query`, or None when there is none or nothing matches."""
        import bm25s

        if not self.passages:
            return None
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return None
        docs, scores = self._index.retrieve(tokens, k=1, show_progress=False)
        return self.passages[int(docs[0][0])] if float(scores[0][0]) > 0 else None


def source_passage(item: EvalItem, chunks: dict[str, str], retriever: Retriever | None) -> Passage | None:
    """The passage the base model reads for the open-book answer of `item`; None when there is none."""
    chunk_id = item.metadata.get("chunk_id")
    if chunk_id and chunk_id in chunks:
        return Passage(chunks[chunk_id], "chunk")
    if item.context:
        return Passage(item.context, "context")
    if item.metadata.get("seed_context"):
        return Passage(str(item.metadata["seed_context"]), "seed context")
    found = retriever.best(item.question) if retriever else None
    return Passage(found, "retrieved") if found else None


def open_book_messages(item: EvalItem, passage: Passage) -> list[Message]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": render("open_book", passage=passage.text.strip(),
                                               question=item.question.strip())}]


def leaf_retrievers(chunks_by_leaf: dict[str, list[dict[str, Any]]],
                    documents: Sequence[str] = ()) -> dict[str | None, Retriever]:
    """One retriever per leaf over its chunks, and (key None) one over `documents` when given."""
    out: dict[str | None, Retriever] = {leaf: Retriever([str(c.get("text", "")) for c in rows])
                                        for leaf, rows in chunks_by_leaf.items()}
    if documents:
        out[None] = Retriever(documents)
    return out


def document_passages(path: Path, max_tokens: int = 300) -> list[str]:
    """The passages of a document file, or of every Markdown, PDF and text file under a folder, chunked as
    generation chunks documents."""
    from graftlm.generate.chunking import chunk_text
    from graftlm.taxonomy.documents import doc_format, extract_text

    path = Path(path)
    if not path.exists():
        raise InputError(f"documents not found: {path}", hint="pass --documents a Markdown, PDF or text file, "
                                                              "or a folder holding some")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    passages: list[str] = []
    for f in files:
        fmt = doc_format(f)
        if fmt is not None:
            passages.extend(chunk_text(extract_text(f, fmt), max_tokens))
    if not passages:
        raise InputError(f"no document text in {path}",
                         hint="--documents takes Markdown (.md), PDF (.pdf) or text (.txt) files with text")
    return passages


def plan_passages(items: Sequence[EvalItem], chunks_by_leaf: dict[str, list[dict[str, Any]]],
                  documents: Sequence[str] = ()) -> dict[str, Passage]:
    """The open-book passage of every knowledge item that has one, by item id. Exam questions without a
    `context` retrieve from `documents` when given, else from every chunk of the generate folder."""
    chunks = {str(c["chunk_id"]): str(c.get("text", "")) for rows in chunks_by_leaf.values() for c in rows
              if c.get("chunk_id")}
    retrievers = leaf_retrievers(chunks_by_leaf, documents)
    everything: Retriever | None = None
    out: dict[str, Passage] = {}
    for item in items:
        if item.leaf_type != "knowledge":
            continue
        retriever = retrievers.get(None) if item.source == "exam" else retrievers.get(item.leaf)
        if retriever is None and item.source == "exam" and not item.context and chunks:
            everything = everything or Retriever(list(chunks.values()))
            retriever = everything
        passage = source_passage(item, chunks, retriever)
        if passage is not None:
            out[item.id] = passage
    return out
