"""Structure-aware chunking of knowledge documents.

A document becomes blocks (headings, paragraphs, fenced code, lists); blocks are packed greedily into
chunks of at most `max_tokens`, a new chunk starts at a heading once the current one is a quarter full,
and a block larger than a chunk is split at sentence ends (then, for a giant sentence, at word windows).
Tokens are counted with the teacher's tokenizer when it is a local model, else estimated from words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

TokenCounter = Callable[[str], int]

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
MIN_FACT_WORDS = 4
"""A sentence or fact of fewer words is a fragment, not a fact."""
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*•+])\s+")


def word_estimate(text: str) -> int:
    """Token estimate without a tokenizer: about 1.3 tokens per English word."""
    return math.ceil(len(text.split()) * 1.3)


def tokenizer_counter(tokenizer: object) -> TokenCounter:
    """A counter from a Hugging Face tokenizer."""

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))  # type: ignore[attr-defined]

    return count


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, the unit the knowledge pipeline asks about."""

    chunk_id: str
    doc: str
    doc_sha256: str
    index: int
    text: str
    tokens: int

    def to_json(self, leaf: str) -> dict[str, object]:
        """The `chunks.jsonl` line (docs/contracts.md)."""
        return {"leaf": leaf, "chunk_id": self.chunk_id, "doc": self.doc, "doc_sha256": self.doc_sha256,
                "text": self.text, "tokens": self.tokens}


def blocks(text: str) -> list[tuple[bool, str]]:
    """(is_heading, text) blocks: headings, fenced code, and blank-line separated paragraphs."""
    out: list[tuple[bool, str]] = []
    para: list[str] = []
    in_fence = False

    def flush() -> None:
        if para and "\n".join(para).strip():
            out.append((False, "\n".join(para).strip("\n")))
        para.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.lstrip().startswith("```"):
            if not in_fence:
                flush()
            para.append(line)
            in_fence = not in_fence
            if not in_fence:
                flush()
            continue
        if in_fence:
            para.append(line)
        elif _HEADING.match(line):
            flush()
            out.append((True, line.strip()))
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return out


def sentences(text: str) -> list[str]:
    """The prose sentences of a chunk in order, each on one line (`split_sentences`): what `generate.facts:
    sentences` takes as the chunk's facts, and what the dry-run plan counts."""
    return [sentence_text(text, s) for s in split_sentences(text)]


def _blocks(text: str) -> list[tuple[int, int]]:
    """Character spans of a chunk's prose blocks: paragraphs (lines up to a blank line) and list items;
    headings are left out."""
    blocks: list[tuple[int, int]] = []
    open_block: list[int] | None = None
    pos = 0
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            open_block = None
            continue
        item = _LIST_ITEM.match(line)
        if item is not None or open_block is None:
            open_block = [start + (item.end() if item else len(line) - len(line.lstrip())), end]
            blocks.append((open_block[0], open_block[1]))
        else:
            open_block[1] = end
            blocks[-1] = (open_block[0], end)
    return blocks


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of a chunk's sentences: each prose block split after `.`, `!` or `?` where a capital
    letter or digit follows; headings and fragments under `MIN_FACT_WORDS` words are left out."""
    spans: list[tuple[int, int]] = []
    for b_start, b_end in _blocks(text):
        block = text[b_start:b_end]
        cut = 0
        for m in [*_SENTENCE_END.finditer(block), None]:
            end = m.start() if m is not None else len(block)
            piece = block[cut:end]
            lead = len(piece) - len(piece.lstrip())
            s, e = b_start + cut + lead, b_start + cut + len(piece.rstrip())
            if len(text[s:e].split()) >= MIN_FACT_WORDS:
                spans.append((s, e))
            if m is not None:
                cut = m.end()
    return spans


def sentence_text(text: str, span: tuple[int, int]) -> str:
    """A sentence of the chunk on one line (line breaks of a wrapped paragraph become spaces)."""
    return " ".join(text[span[0]:span[1]].split())


def _split_large(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Split a block larger than a chunk at sentence ends, and a giant sentence at word windows."""
    if count(text) <= max_tokens:
        return [text]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if count(sentence) <= max_tokens:
            pieces.append(sentence)
            continue
        words = sentence.split()
        step = max(1, int(len(words) * max_tokens / max(1, count(sentence))))
        pieces.extend(" ".join(words[i : i + step]) for i in range(0, len(words), step))
    # Re-pack sentences up to the limit.
    packed: list[str] = []
    for p in pieces:
        if packed and count(packed[-1] + " " + p) <= max_tokens:
            packed[-1] = packed[-1] + " " + p
        else:
            packed.append(p)
    return packed


def chunk_text(text: str, max_tokens: int = 500, count: TokenCounter = word_estimate) -> list[str]:
    """Chunks of `text`, each at most `max_tokens` (except a single indivisible word run). A heading is
    never left at the end of a chunk: it moves on with the section it introduces."""
    chunks: list[str] = []
    current: list[tuple[bool, str, int]] = []  # (is_heading, piece, tokens)

    def size() -> int:
        return sum(n for _, _, n in current)

    for is_heading, block in blocks(text):
        queue = _split_large(block, max_tokens, count)
        while queue:
            piece = queue.pop(0)
            n = count(piece)
            starts_section = is_heading and size() >= max_tokens // 4
            if current and (size() + n > max_tokens or starts_section):
                carry: list[tuple[bool, str, int]] = []
                while current and current[-1][0]:
                    carry.insert(0, current.pop())
                if current:
                    chunks.append("\n\n".join(p for _, p, _ in current))
                current = carry
                room = max_tokens - size()
                if current and n > room and room >= max_tokens // 4:
                    # the section's first piece does not fit beside its heading: split it to fit
                    queue = _split_large(piece, room, count) + queue
                    piece = queue.pop(0)
                    n = count(piece)
            current.append((is_heading, piece, n))
    if current:
        chunks.append("\n\n".join(p for _, p, _ in current))
    return chunks


def chunk_document(doc_path: str, doc_sha256: str, text: str, max_tokens: int = 500,
                   count: TokenCounter = word_estimate) -> list[Chunk]:
    """The chunks of one document, with ids stable across runs (document hash + index)."""
    return [
        Chunk(f"{doc_sha256[:12]}-{i:04d}", doc_path, doc_sha256, i, body, count(body))
        for i, body in enumerate(chunk_text(text, max_tokens, count))
    ]
