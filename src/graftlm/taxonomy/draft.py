"""`graft taxonomy draft`: write a first `qna.yaml` for a knowledge leaf from documents, or for a skill leaf
from a task description and a few examples.

Knowledge: the documents (Markdown, PDF, text) are split into sections by their headings; five seed
contexts are cut at sentence boundaries (about `TARGET_CONTEXT_WORDS` words, always under InstructLab's
`CONTEXT_WORDS`) from sections spread over the documents; the teacher drafts three questions and answers
per context with the generation prompt `knowledge_qa` (parsed by `generate.parse.parse_qa_pairs`, and kept
only when the answer's words come from the context). Where that leaves gaps (a small teacher such as the
embedded 135M fills about a third), the teacher is asked per sentence of the context, `SENTENCE_SAMPLES`
completions a request, rotating the prompts `draft_sentence_qa` (a question and its short answer) and
`draft_sentence_question` (a question alone) over `SENTENCE_TRIES` rounds: a reply is kept as the
teacher's own pair when its answer is grounded in the sentence, else as an extractive pair (the teacher's
question, the sentence itself as the answer) when its question is about that sentence (`sentence_pair`).
The `document` block names the git repository and
commit holding the documents: the repository they are already committed in, or a local repository built
for them (`<TAXONOMY>-documents/<leaf>-repo`, from copies in `<TAXONOMY>-documents/<leaf>`, with the
deterministic commit of `build_docs_repo`; `graft run` rebuilds it from the copies when it is missing).

Skill: the given examples are seeds; the teacher drafts the rest up to five with the prompts
`freeform_questions` and `answer`.

Whatever the teacher could not fill is a `FILL IN:` placeholder (`taxonomy.placeholder`) that fails
`graft taxonomy validate` with the instruction, so a draft is never mistaken for a finished leaf.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.errors import DocumentError, InputError
from graftlm.generate.questions import (
    MIN_GROUNDED_SHARE,
    content_words,
    outline_topic,
    question_match,
    question_problem,
)
from graftlm.taxonomy.model import QA
from graftlm.taxonomy.placeholder import placeholder
from graftlm.taxonomy.show import CONTEXT_WORDS

SEEDS = 5
"""Seed examples in a drafted leaf (InstructLab's minimum)."""
QAS_PER_CONTEXT = 3
"""Questions and answers per knowledge context (InstructLab's minimum)."""
TARGET_CONTEXT_WORDS = 120
"""Words a drafted context aims at; contexts stay under `CONTEXT_WORDS` (InstructLab's guidance)."""
MIN_CONTEXT_WORDS = 25
"""Shorter pieces of text are not used as contexts."""
MAX_PLAIN_HEADING_WORDS = 6
"""In PDF and text documents, a capitalised line of at most this many words without final punctuation is a
heading."""
TEACHER_TRIES = 2
"""Teacher calls per missing skill example before a placeholder is written instead."""
CONTEXT_TRIES = 1
"""Rounds of the whole-context prompt `knowledge_qa` per context before the sentence rounds."""
CONTEXT_TOKENS = 160
"""Tokens the teacher may write for one context's Q&A: three pairs take about 130; the limit stops a small
teacher that writes on after them (generation time grows with it)."""
SENTENCE_TRIES = 6
"""Rounds of the per-sentence prompts (rotated) for contexts still missing Q&A."""
SENTENCE_SAMPLES = 2
"""Completions asked per sentence and round (sampled, one batched request)."""
SPARE_ROUNDS = 2
"""Rounds of spare pieces tried for contexts the teacher left short."""
SENTENCE_PROMPTS = ("draft_sentence_qa", "draft_sentence_question")
"""The per-sentence prompts, one per round in turn."""

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LEAF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ANSWER = re.compile(r"\bAnswer\s*:[ \t]*([^\n]*\S)", re.IGNORECASE)


@dataclass(frozen=True)
class Section:
    """A heading and the paragraphs under it (whitespace inside each paragraph collapsed)."""

    heading: str
    paragraphs: tuple[str, ...]
    source: str = ""
    level: int = 0
    """The Markdown heading's level (1 for `#`); 0 for plain-text headings and text before any heading."""


@dataclass(frozen=True)
class Context:
    """A seed context: text cut from one section."""

    text: str
    heading: str
    source: str = ""


@dataclass
class PairCounts:
    """Q&A filled by each form: the whole-context prompt, the per-sentence teacher pairs, the extractive ones."""

    context: int = 0
    teacher: int = 0
    extractive: int = 0
    swapped: int = 0
    """Contexts replaced by a spare piece of the documents because the teacher could not fill them."""
    context_s: float = 0.0
    """Seconds spent on the whole-context prompt."""
    sentence_s: float = 0.0
    """Seconds spent on the per-sentence rounds."""


@dataclass
class DraftResult:
    """What a draft wrote: the qna.yaml, how many placeholders are left, and notes for the user."""

    path: Path
    placeholders: int
    teacher_calls: int
    notes: list[str] = field(default_factory=list)
    counts: PairCounts | None = None
    """Knowledge drafts: the Q&A filled by each form."""


# --- pure parts ----------------------------------------------------------------------------------


def plain_heading(line: str) -> bool:
    """A line of PDF or plain text that reads as a heading: a few capitalised words without final
    punctuation (`Currency`, `The Tide Lantern Festival`)."""
    words = line.split()
    return 0 < len(words) <= MAX_PLAIN_HEADING_WORDS and words[0][:1].isupper() and line.rstrip()[-1] not in ".,;:!?"


def split_sections(text: str, source: str = "", *, plain: bool = False) -> list[Section]:
    """Sections of a document in order: Markdown headings start sections (with `plain`, for PDF and text
    documents, so do `plain_heading` lines); text before the first heading is one section per paragraph
    with no heading. Fenced code and table rows are left out of paragraphs (they make poor contexts)."""
    sections: list[Section] = []
    heading: str | None = None
    level = 0
    paragraphs: list[str] = []
    current: list[str] = []
    in_fence = False

    def end_paragraph() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    def end_section() -> None:
        end_paragraph()
        if heading is None:
            sections.extend(Section("", (p,), source) for p in paragraphs)
        elif paragraphs or heading:
            sections.append(Section(heading, tuple(paragraphs), source, level))
        paragraphs.clear()

    for line in text.splitlines():
        if line.strip().startswith(("```", "~~~")):
            in_fence = not in_fence
            end_paragraph()
            continue
        if in_fence:
            continue
        m = _HEADING.match(line)
        if m or (plain and plain_heading(line)):
            end_section()
            heading = m.group(2).strip() if m else line.strip()
            level = len(m.group(1)) if m else 0
        elif not line.strip() or line.lstrip().startswith("|"):
            end_paragraph()
        else:
            current.append(line.strip())
    end_section()
    return [s for s in sections if s.paragraphs or s.heading]


def sentences(paragraph: str) -> list[str]:
    """A paragraph split at sentence ends (a `.`, `!` or `?` followed by a capital or digit)."""
    return [s for s in _SENTENCE_END.split(" ".join(paragraph.split())) if s]


def windows(section: Section, target: int = TARGET_CONTEXT_WORDS, limit: int = CONTEXT_WORDS,
            min_sentences: int = 1) -> list[str]:
    """Pieces of a section made of whole sentences, each about `target` words and under `limit`; pieces
    shorter than `MIN_CONTEXT_WORDS` are merged into the previous piece or left out, and so are pieces of
    fewer than `min_sentences` sentences."""
    out: list[list[str]] = []
    piece: list[str] = []
    count = 0
    for paragraph in section.paragraphs:
        for s in sentences(paragraph):
            n = len(s.split())
            if n >= limit:
                continue  # one sentence over the limit cannot be a context
            if piece and count + n > target:
                out.append(piece)
                piece, count = [], 0
            piece.append(s)
            count += n
    if piece:
        if count >= MIN_CONTEXT_WORDS or not out:
            out.append(piece)
        elif len(" ".join(out[-1]).split()) + count < limit:
            out[-1] = out[-1] + piece
    texts = [" ".join(w) for w in out if len(w) >= min_sentences]
    return [t for t in texts if len(t.split()) >= MIN_CONTEXT_WORDS]


def spread(n_items: int, k: int) -> list[int]:
    """`k` indices out of `n_items`, evenly spaced from the first to the last."""
    if n_items <= k:
        return list(range(n_items))
    if k == 1:
        return [0]
    return sorted({round(i * (n_items - 1) / (k - 1)) for i in range(k)})


def lead_sections(sections: list[Section]) -> set[int]:
    """Indices of the Markdown documents' leads: a section under a top-level (`#`) title that subsections
    (`##` and deeper) of the same document follow."""
    return {i for i, s in enumerate(sections)
            if s.level == 1 and any(t.source == s.source and t.level > 1 for t in sections[i + 1:])}


def pick_contexts(sections: list[Section], k: int = SEEDS, target: int = TARGET_CONTEXT_WORDS,
                  min_sentences: int = QAS_PER_CONTEXT) -> list[Context]:
    """`k` contexts covering the documents: one from each of `k` sections spread over them; when there are
    fewer usable sections, further pieces of the sections in turn. Pieces hold at least `min_sentences`
    sentences (one per question) while the documents allow; then shorter pieces when the documents are too
    short for `k` pieces of `target` words. A document's lead (`lead_sections`: the text under its title,
    which often talks about the document rather than its subject) is used only when the rest gives fewer
    than `k` pieces. Returned in document order."""
    leads = lead_sections(sections)
    body = [s for i, s in enumerate(sections) if i not in leads]
    if leads and sum(len(windows(s, target, min_sentences=min_sentences)) for s in body) >= k:
        sections = body
    pieces = [[Context(w, s.heading, s.source) for w in windows(s, target, min_sentences=min_sentences)]
              for s in sections]
    pieces = [p for p in pieces if p]
    if sum(map(len, pieces)) < k and min_sentences > 1:
        return pick_contexts(sections, k, target, 1)
    if sum(map(len, pieces)) < k and target >= 2 * MIN_CONTEXT_WORDS:
        return pick_contexts(sections, k, target // 2, 1)
    chosen: list[tuple[int, int]] = [(i, 0) for i in spread(len(pieces), k)]
    depth = 1
    while len(chosen) < k and any(len(p) > depth for p in pieces):
        extra = [i for i, p in enumerate(pieces) if len(p) > depth]
        chosen += [(i, depth) for i in [extra[j] for j in spread(len(extra), k - len(chosen))]]
        depth += 1
    return [pieces[i][j] for i, j in sorted(chosen)]


def spare_contexts(sections: list[Section], chosen: list[Context], target: int = TARGET_CONTEXT_WORDS) -> list[Context]:
    """Pieces of the documents not `chosen`, to stand in for a context the teacher could not fill: first those of
    sections no chosen context comes from, then further pieces of the chosen sections; no document lead."""
    leads = lead_sections(sections)
    taken = {c.text for c in chosen}
    used = {(c.source, c.heading) for c in chosen}
    pieces = [(((s.source, s.heading) in used), Context(w, s.heading, s.source))
              for i, s in enumerate(sections) if i not in leads
              for w in windows(s, target, min_sentences=QAS_PER_CONTEXT)]
    return [c for _, c in sorted(pieces, key=lambda p: p[0]) if c.text not in taken]


def document_outline(sections: list[Section], names: list[str], max_headings: int = 10) -> str:
    """A one-line outline: the documents' titles (first headings, else file names) and their section
    headings."""
    titles = [s.heading for s in sections if s.heading][:1] or names
    headings = list(dict.fromkeys(s.heading for s in sections if s.heading and s.heading not in titles))
    text = "; ".join(titles)
    if headings:
        more = ", ..." if len(headings) > max_headings else ""
        text += ": " + ", ".join(headings[:max_headings]) + more
    return text


def grounded(qa: QA, context: str, min_share: float = MIN_GROUNDED_SHARE) -> bool:
    """True when at least `min_share` of the answer's content words appear in the context."""
    words = content_words(qa.answer)
    if not words:
        return False
    have = set(content_words(context))
    return sum(w in have for w in words) / len(words) >= min_share


def grounded_pairs(text: str, context: str, taken: set[str]) -> tuple[list[QA], list[str]]:
    """The teacher's `knowledge_qa` answer parsed into Q&A pairs grounded in `context` and not already
    `taken` (normalised questions); the rest as reasons."""
    from graftlm.generate.parse import parse_qa_pairs

    parsed = parse_qa_pairs(text)
    keep: list[QA] = []
    rejects = [r.reason for r in parsed.rejects]
    for qa in parsed.items:
        key = " ".join(content_words(qa.question))
        if key in taken:
            rejects.append("repeated")
        elif not grounded(qa, context):
            rejects.append("not_grounded")
        else:
            taken.add(key)
            keep.append(qa)
    return keep, rejects


def sentence_pair(text: str, sentence: str, context: str, topic: str) -> tuple[QA | None, str]:
    """One reply to a per-sentence prompt as a pair and its kind, or None and the reject reason. `teacher`:
    the reply's question with its own answer, grounded in the sentence, adding to the question, ended (not cut
    off by the token limit) and with no number the sentence lacks (`118` for `1186`);
    `extractive`: the reply's question answered by the sentence itself."""
    found = question_match(text)
    if found is None:
        return None, "no_question"
    question = " ".join(found.group(0).split())
    problem = question_problem(question, sentence, context, topic)
    if problem:
        return None, problem
    m = _ANSWER.search(text, found.end())
    if m:
        answer = m.group(1).strip().strip("\"'").strip()
        qa = QA(question, answer)
        numbers = set(re.findall(r"\d+", answer)) - set(re.findall(r"\d+", sentence))
        ended = m.end() < len(text.rstrip()) or answer[-1] in ".!?"  # not cut off by the token limit
        if (grounded(qa, sentence) and set(content_words(answer)) - set(content_words(question)) and not numbers
                and ended):
            return qa, "teacher"
    return QA(question, sentence), "extractive"


def source_sentence(answer: str, sents: list[str]) -> int:
    """The index of the sentence in `sents` that shares most content words with `answer`."""
    words = set(content_words(answer))
    return max(range(len(sents)), key=lambda i: len(words & set(content_words(sents[i]))), default=0)


def fill_context(pairs: list[QA], candidates: list[tuple[int, QA, str]], sents: list[str], taken: set[str],
                 k: int = QAS_PER_CONTEXT) -> list[tuple[QA, str]]:
    """The per-sentence `candidates` (sentence index, pair, kind) chosen to complete `pairs` up to `k`: the
    teacher's own pairs first, then extractive ones, one per sentence not already answered by `pairs`; then,
    for what is still missing, the teacher's pairs from answered sentences. Never a question already `taken`
    (normalised; the chosen ones are added to it) nor an answer already given."""
    used = {source_sentence(qa.answer, sents) for qa in pairs}
    chosen: list[tuple[QA, str]] = []
    answers = {" ".join(content_words(qa.answer)) for qa in pairs}
    ranked = sorted(candidates, key=lambda c: c[2] != "teacher")
    for second in (False, True):  # then teacher pairs with a new answer from a sentence already answered
        for i, qa, kind in ranked:
            key, answer = " ".join(content_words(qa.question)), " ".join(content_words(qa.answer))
            if len(pairs) + len(chosen) >= k:
                return chosen
            if key in taken or answer in answers or (i in used) != second or (second and kind != "teacher"):
                continue
            used.add(i)
            taken.add(key)
            answers.add(answer)
            chosen.append((qa, kind))
    return chosen


def parse_example(text: str) -> QA:
    """A skill example given on the command line: `QUESTION => ANSWER`."""
    question, sep, answer = text.partition("=>")
    if not sep or not question.strip() or not answer.strip():
        raise InputError(f"--example {text!r} is not QUESTION => ANSWER",
                         hint='e.g. --example "Make this polite: Close the door. => Could you please close the door?"')
    return QA(question.strip(), answer.strip())


def read_examples(path: Path) -> list[QA]:
    """Skill examples from a file: YAML (a list of {question, answer}) or text with `Question:`/`Answer:`
    pairs."""
    import yaml

    from graftlm.generate.parse import parse_qa_pairs

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read examples file {path}: {e}") from None
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML: {e}") from None
        items = data.get("seed_examples", data) if isinstance(data, dict) else data
        out: list[QA] = []
        for i, item in enumerate(items if isinstance(items, list) else [None]):
            if not (isinstance(item, dict) and isinstance(item.get("question"), str)
                    and isinstance(item.get("answer"), str)):
                raise InputError(f"{path}: item {i} is not a mapping with string `question` and `answer`",
                                 hint="write a YAML list: - question: ...\\n  answer: ...")
            out.append(QA(item["question"].strip(), item["answer"].strip()))
        return out
    parsed = parse_qa_pairs(text)
    for r in parsed.rejects:
        raise InputError(f"{path}: cannot use the example {r.text[:80]!r} ({r.reason.replace('_', ' ')})",
                         hint="each example is a `Question: ...` line (three words or more) and an `Answer: ...` "
                         "line; or write the file as YAML")
    if not parsed.items:
        raise InputError(f"{path}: no `Question:` / `Answer:` pairs found",
                         hint="write each example as a line `Question: ...` followed by a line `Answer: ...`")
    return parsed.items


def check_leaf(leaf: str, branch: str) -> tuple[str, ...]:
    """The folders of a leaf name such as `knowledge/geography/islands/vescary`, which must start with
    `branch` and have safe folder names."""
    parts = tuple(p for p in leaf.strip().strip("/").split("/") if p)
    if len(parts) < 2 or parts[0] != branch or not all(_LEAF_PART.match(p) for p in parts):
        raise InputError(f"--leaf {leaf!r} is not a {branch} leaf path",
                         hint=f"e.g. --leaf {branch}/{'geography/islands/vescary' if branch == 'knowledge' else 'writing/polite_requests'}"
                         " (folders of letters, digits, `_`, `-` and `.`)")
    return parts


def domain_from_leaf(parts: tuple[str, ...]) -> str:
    """`knowledge/geography/islands/vescary` -> `Geography`."""
    return parts[1].replace("_", " ").replace("-", " ").capitalize()


def knowledge_qna(*, created_by: str, domain: str, outline: str, contexts: list[Context],
                  pairs: list[list[QA]], document: dict[str, Any]) -> dict[str, Any]:
    """The qna.yaml of a knowledge leaf, with placeholders for missing contexts and Q&A."""
    seeds = []
    for i in range(SEEDS):
        ctx = contexts[i].text if i < len(contexts) else placeholder(
            f"paste a passage of about {TARGET_CONTEXT_WORDS} words (under {CONTEXT_WORDS}) from the documents, "
            f"from a part the other contexts do not cover (context {i + 1})")
        got = pairs[i] if i < len(pairs) else []
        qas = [{"question": qa.question, "answer": qa.answer} for qa in got[:QAS_PER_CONTEXT]]
        for j in range(len(qas), QAS_PER_CONTEXT):
            qas.append({"question": placeholder(f"write question {j + 1} of context {i + 1}, answered by the context"),
                        "answer": placeholder(f"write the answer to question {j + 1} of context {i + 1}, "
                                              "in the words of the context")})
        seeds.append({"context": ctx, "questions_and_answers": qas})
    return {"version": 3, "created_by": created_by, "domain": domain, "document_outline": outline,
            "seed_examples": seeds, "document": document}


def skill_qna(*, created_by: str, task: str, examples: list[QA]) -> dict[str, Any]:
    """The qna.yaml of a (freeform) compositional skill leaf, with placeholders up to `SEEDS` examples."""
    seeds = [{"question": qa.question, "answer": qa.answer} for qa in examples]
    for i in range(len(seeds), SEEDS):
        seeds.append({"question": placeholder(f"write example question {i + 1} for this task"),
                      "answer": placeholder(f"write the answer you want for example question {i + 1}")})
    return {"version": 3, "created_by": created_by, "task_description": task, "seed_examples": seeds}


def dump_qna(data: dict[str, Any], header: str) -> str:
    """YAML text of a qna.yaml with a comment header (no trailing spaces, final newline)."""
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body


# --- documents and their repository --------------------------------------------------------------


def read_documents(paths: list[Path]) -> list[tuple[Path, str]]:
    """(path, text) of each document; an InputError names a missing or unreadable one."""
    from graftlm.taxonomy.documents import doc_format, extract_text

    out = []
    for p in paths:
        fmt = doc_format(p)
        if not p.is_file():
            raise InputError(f"document {p} not found", hint="pass Markdown (.md), PDF (.pdf) or text files")
        if fmt is None:
            raise InputError(f"document {p} is not Markdown, PDF or text ({p.suffix or 'no suffix'})",
                             hint="pass .md, .pdf or .txt files")
        text = extract_text(p, fmt)
        if not text.strip():
            raise DocumentError(f"document {p} has no text", hint="for a scanned PDF, run OCR on it first")
        out.append((p, text))
    return out


def _git_out(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def committed_repo(paths: list[Path]) -> tuple[Path, str, list[str]] | None:
    """(repository root, HEAD commit, paths inside it) when every document is committed unchanged in one
    git repository; else None."""
    roots = {_git_out(["rev-parse", "--show-toplevel"], p.resolve().parent) for p in paths}
    if len(roots) != 1 or None in roots:
        return None
    root = Path(str(roots.pop()))
    rel = [p.resolve().relative_to(root.resolve()).as_posix() for p in paths]
    tracked = _git_out(["ls-files", "--error-unmatch", "--", *rel], root)
    dirty = _git_out(["status", "--porcelain", "--", *rel], root)
    commit = _git_out(["rev-parse", "HEAD"], root)
    if tracked is None or dirty is None or dirty or not commit:
        return None
    return root, commit, rel


def local_repo(paths: list[Path], taxonomy: Path, leaf: tuple[str, ...]) -> tuple[Path, str, list[str]]:
    """Copy the documents to `<TAXONOMY>-documents/<leaf>` and commit them into a new repository beside it
    (`...-repo`). Reuses both when they already hold the same files."""
    from graftlm.taxonomy.docrepo import build_docs_repo

    base = taxonomy.resolve().parent / f"{taxonomy.resolve().name}-documents"
    name = "-".join(leaf[1:])
    source, repo = base / name, base / f"{name}-repo"
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise InputError("two documents have the same file name", hint="rename one of them")
    wanted = {p.name: p.read_bytes() for p in paths}
    if source.exists():
        have = {f.name: f.read_bytes() for f in source.iterdir() if f.is_file()}
        if have != wanted:
            raise InputError(f"{source} already holds other documents for this leaf",
                             hint=f"delete {source} and {repo} to draft from these documents, or pass --out "
                             "with another taxonomy")
    else:
        source.mkdir(parents=True)
        for n, data in wanted.items():
            (source / n).write_bytes(data)
    if repo.exists() and not (repo / ".git").exists():
        raise InputError(f"{repo} exists and is not a git repository", hint=f"delete or move {repo}")
    return repo, build_docs_repo(source, repo), sorted(wanted)


# --- the teacher ---------------------------------------------------------------------------------


class _Session:
    """A teacher and one progress bar over its calls, used inside one event loop."""

    def __init__(self, spec: str, desc: str, progress: bool) -> None:
        import sys

        from tqdm import tqdm

        from graftlm.config.model_spec import ModelSpec
        from graftlm.config.teacher import TeacherConfig
        from graftlm.errors import InputError
        from graftlm.generate.fake_responses import respond
        from graftlm.teacher.factory import make_teacher

        try:
            model = ModelSpec(spec)
        except ValueError as e:
            raise InputError(f"--teacher: {e}", hint="pass default, fake, a model folder, a .gguf file or http(s) URLs") from None
        # the draft asks generation's own prompts, so `fake` answers them as it does for generation
        self.teacher = make_teacher(TeacherConfig(model=model), responders=[respond])
        self.bar = tqdm(total=0, desc=desc, unit="call", file=sys.stderr, disable=not progress or None)
        self.calls = 0

    async def ask(self, batch: list[tuple[list[Any], Any]]) -> list[str]:
        """The first completion of each (messages, options) request, asked concurrently."""
        return [texts[0] if texts else "" for texts in await self.ask_all(batch)]

    async def ask_all(self, batch: list[tuple[list[Any], Any]]) -> list[list[str]]:
        """Every completion of each (messages, options) request, asked concurrently."""
        self.bar.total = (self.bar.total or 0) + len(batch)
        self.bar.refresh()

        async def one(messages: list[Any], options: Any) -> list[str]:
            try:
                return [str(t) for t in (await self.teacher.chat(messages, options)).texts]
            finally:
                self.calls += 1
                self.bar.update(1)

        return list(await asyncio.gather(*(one(m, o) for m, o in batch)))

    async def close(self) -> None:
        self.bar.close()
        await self.teacher.aclose()


async def _draft_with_spares(session: _Session, contexts: list[Context], spares: list[Context], domain: str,
                             outline: str, counts: PairCounts) -> tuple[list[Context], list[list[QA]]]:
    """Draft the contexts' Q&A; then each context left short is swapped for a spare piece of the documents
    whose Q&A the teacher fills completely, when there is one (spares are tried as many at a time as there
    are short contexts, in `SPARE_ROUNDS` rounds)."""
    taken: set[str] = set()
    pairs = await _draft_pairs(session, contexts, domain, outline, counts, taken)
    contexts = list(contexts)
    for _ in range(SPARE_ROUNDS):
        short = [i for i, p in enumerate(pairs) if len(p) < QAS_PER_CONTEXT]
        trying, spares = spares[:len(short)], spares[len(short):]
        if not short or not trying:
            break
        extra = PairCounts()
        spare_pairs = await _draft_pairs(session, trying, domain, outline, extra, taken)
        full = [(c, p) for c, p in zip(trying, spare_pairs, strict=True) if len(p) == QAS_PER_CONTEXT]
        for i, (c, p) in zip(short, full, strict=False):
            contexts[i], pairs[i] = c, p
        counts.swapped += len(full[:len(short)])
        counts.context_s += extra.context_s
        counts.sentence_s += extra.sentence_s
    return contexts, pairs


async def _draft_pairs(session: _Session, contexts: list[Context], domain: str, outline: str,
                       counts: PairCounts, taken: set[str]) -> list[list[QA]]:
    from graftlm.teacher.base import SamplingOptions
    from graftlm.templates import render

    start = time.perf_counter()
    pairs: list[list[QA]] = [[] for _ in contexts]
    for attempt in range(CONTEXT_TRIES):
        todo = [i for i in range(len(contexts)) if len(pairs[i]) < QAS_PER_CONTEXT]
        if not todo:
            break
        options = SamplingOptions(temperature=0.0 if attempt == 0 else 0.7, max_tokens=CONTEXT_TOKENS, seed=attempt)
        texts = await session.ask([(render("knowledge_qa", domain=domain, outline=outline, examples=[],
                                           chunk=contexts[i].text, k=QAS_PER_CONTEXT - len(pairs[i])), options)
                                   for i in todo])
        for i, text in zip(todo, texts, strict=True):
            keep, _ = grounded_pairs(text, contexts[i].text, taken)
            pairs[i] += keep[:QAS_PER_CONTEXT - len(pairs[i])]
    counts.context, counts.context_s = sum(map(len, pairs)), time.perf_counter() - start
    topic = outline_topic(outline, domain)
    for attempt in range(SENTENCE_TRIES):
        asks = []
        for i, c in enumerate(contexts):
            sents = sentences(c.text)
            used = {source_sentence(qa.answer, sents) for qa in pairs[i]}
            if len(pairs[i]) < QAS_PER_CONTEXT:
                asks += [(i, j, sent) for j, sent in enumerate(sents) if j not in used]
        if not asks:
            break
        form = SENTENCE_PROMPTS[attempt % len(SENTENCE_PROMPTS)]
        qa_form = form == "draft_sentence_qa"  # a question and a short answer; else a question alone
        options = SamplingOptions(temperature=0.8, max_tokens=40 if qa_form else 32, n=SENTENCE_SAMPLES,
                                  seed=100 + attempt, stop=("\n\n\n",) if qa_form else ("\n",))
        replies = await session.ask_all([(render(form, sentence=sent, topic=topic), options) for _, _, sent in asks])
        found: dict[int, list[tuple[int, QA, str]]] = {}
        for (i, j, sent), texts in zip(asks, replies, strict=True):
            for text in texts:
                qa, kind = sentence_pair(text, sent, contexts[i].text, topic)
                if qa is not None:
                    found.setdefault(i, []).append((j, qa, kind))
        for i, cands in found.items():
            for qa, kind in fill_context(pairs[i], cands, sentences(contexts[i].text), taken):
                pairs[i].append(qa)
                setattr(counts, kind, getattr(counts, kind) + 1)
    counts.sentence_s = time.perf_counter() - start - counts.context_s
    return pairs


async def _draft_examples(session: _Session, task: str, examples: list[QA]) -> list[QA]:
    from graftlm.generate.parse import parse_answer, parse_questions
    from graftlm.teacher.base import SamplingOptions
    from graftlm.templates import render

    seeds = list(examples[:SEEDS])
    seen = {" ".join(content_words(qa.question)) for qa in seeds}
    for attempt in range(TEACHER_TRIES):
        missing = SEEDS - len(seeds)
        if missing <= 0:
            break
        seed = examples[attempt % len(examples)]
        (text,) = await session.ask([(render("freeform_questions", task=task, seed_question=seed.question,
                                             k=missing), SamplingOptions(temperature=0.7, max_tokens=300, seed=attempt))])
        questions = []
        for q in parse_questions(text).items:
            key = " ".join(content_words(q))
            if key not in seen:
                seen.add(key)
                questions.append(q)
        questions = questions[:missing]
        answers = await session.ask([(render("answer", task=task, seed_question=seed.question,
                                             seed_answer=seed.answer, context="", question=q),
                                      SamplingOptions(temperature=0.0, max_tokens=400)) for q in questions])
        for q, a in zip(questions, answers, strict=True):
            parsed = parse_answer(a, q)
            if parsed.items:
                seeds.append(QA(q, parsed.items[0]))
    return seeds


def _with_teacher(spec: str, desc: str, progress: bool, work: Callable[[_Session], Awaitable[Any]]) -> tuple[Any, int]:
    """Run `work` with a teacher session in one event loop; (its result, teacher calls)."""

    async def main() -> tuple[Any, int]:
        session = _Session(spec, desc, progress)
        try:
            return await work(session), session.calls
        finally:
            await session.close()

    return asyncio.run(main())


def draft_knowledge(documents: list[Path], leaf: str, taxonomy: Path, *, teacher: str = "default",
                    domain: str | None = None, created_by: str | None = None, force: bool = False,
                    progress: bool = True) -> DraftResult:
    """Write `TAXONOMY/<leaf>/qna.yaml` for a knowledge leaf drafted from `documents`."""
    from graftlm.artifacts import atomic_write_text
    from graftlm.taxonomy.documents import doc_format

    parts = check_leaf(leaf, "knowledge")
    out = Path(taxonomy).joinpath(*parts) / "qna.yaml"
    if out.exists() and not force:
        raise InputError(f"{out} exists", hint="pass --force to replace it, or another --leaf")
    docs = read_documents([Path(p) for p in documents])
    sections = [s for p, text in docs for s in split_sections(text, p.name, plain=p.suffix.lower() == ".pdf"
                                                               or doc_format(p) == "text")]
    contexts = pick_contexts(sections)
    outline = document_outline(sections, [p.stem for p, _ in docs])
    domain = domain or domain_from_leaf(parts)
    notes = []
    found = committed_repo([p for p, _ in docs])
    if found:
        root, commit, patterns = found
        repo_spec = str(root)
        notes.append(f"the documents are committed in the git repository {root} at {commit[:12]}; put its "
                     "shared URL in document.repo (and push that commit) before others use the leaf")
    else:
        repo, commit, patterns = local_repo([p for p, _ in docs], Path(taxonomy), parts)
        repo_spec = os.path.relpath(repo, out.parent)
        notes.append(f"the documents are not all committed unchanged in one git repository: created the local repository {repo} "
                     f"(commit {commit[:12]}) from copies in {repo.with_name(repo.name[:-len('-repo')])}; "
                     "push it and put its URL in document.repo to share the leaf")
    if len(contexts) < SEEDS:
        notes.append(f"the documents gave only {len(contexts)} usable context(s) of {SEEDS}; fill in the rest")
    counts = PairCounts()
    spares = spare_contexts(sections, contexts)
    (contexts, pairs), calls = _with_teacher(
        teacher, "draft Q&A", progress,
        lambda session: _draft_with_spares(session, contexts, spares, domain or "", outline, counts))
    if counts.swapped:
        notes.append(f"{counts.swapped} context(s) the teacher could not fill were replaced by other pieces of the "
                     "documents")
    if counts.teacher or counts.extractive:
        notes.append(f"Q&A drafted: {counts.context} from whole contexts ({counts.context_s:.0f} s), "
                     f"{counts.teacher} per sentence and {counts.extractive} extractive ({counts.sentence_s:.0f} s; "
                     "extractive: the teacher's question, the context's sentence as the answer): shorten those "
                     "answers as you review them")
    data = knowledge_qna(created_by=created_by or _user(), domain=domain, outline=outline, contexts=contexts,
                         pairs=pairs, document={"repo": repo_spec, "commit": commit, "patterns": patterns})
    names = ", ".join(p.name for p, _ in docs)
    atomic_write_text(out, dump_qna(data, f"Drafted by `graft taxonomy draft` from {names} with teacher "
                                         f"{teacher}.\nReview every context, question and answer; replace "
                                         "each FILL IN: line, then run `graft taxonomy validate`."))
    return DraftResult(out, _count(data), calls, notes, counts)


def draft_skill(task: str, examples: list[QA], leaf: str, taxonomy: Path, *, teacher: str = "default",
                created_by: str | None = None, force: bool = False, progress: bool = True) -> DraftResult:
    """Write `TAXONOMY/<leaf>/qna.yaml` for a freeform skill leaf: the examples given, and up to `SEEDS`
    in all drafted by the teacher."""
    from graftlm.artifacts import atomic_write_text

    parts = check_leaf(leaf, "compositional_skills")
    if not task.strip():
        raise InputError("--skill needs a task description", hint='e.g. --skill "Turn a blunt command into a '
                         'polite request"')
    if not examples:
        raise InputError("a skill draft needs at least one example",
                         hint='pass --example "QUESTION => ANSWER" (repeatable) or --examples FILE')
    out = Path(taxonomy).joinpath(*parts) / "qna.yaml"
    if out.exists() and not force:
        raise InputError(f"{out} exists", hint="pass --force to replace it, or another --leaf")
    seeds, calls = _with_teacher(teacher, "draft examples", progress,
                                 lambda session: _draft_examples(session, task.strip(), examples))
    data = skill_qna(created_by=created_by or _user(), task=task.strip(), examples=seeds)
    atomic_write_text(out, dump_qna(data, f"Drafted by `graft taxonomy draft --skill` with teacher {teacher}.\n"
                                         "Review every question and answer; replace each FILL IN: line, then "
                                         "run `graft taxonomy validate`."))
    notes = [] if len(examples) <= SEEDS else [f"kept the first {SEEDS} of {len(examples)} examples"]
    return DraftResult(out, _count(data), calls, notes)


def _count(data: dict[str, Any]) -> int:
    from graftlm.taxonomy.placeholder import find_placeholders

    return len(find_placeholders(data))


def _user() -> str:
    try:
        return getpass.getuser() or "graftlm-user"
    except (KeyError, OSError):
        return "graftlm-user"

