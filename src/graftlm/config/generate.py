"""Synthetic data generation configuration (`graft generate`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from graftlm.config.base import Section

AuxTask = Literal["detailed_summary", "extractive_summary", "atomic_facts"]
RewriteKind = Literal["faq", "newcomer", "key_points"]


class ViewsConfig(Section):
    """Knowledge, facts mode (`generate.facts` not `off`): how many views of each fact (and of each chunk) the
    teacher writes. Each view kind has its own prompt, parser and reject reasons (docs/generate.md)."""

    qa: int = Field(default=2, ge=0, le=10)
    """Q&A pairs per fact, in varied forms (what/which/who/when/where/how many, yes/no; short and long
    answers), the forms rotating over facts. Trained with loss on the answer."""

    question: int = Field(default=0, ge=0, le=5)
    """Q&A pairs per fact whose question the teacher writes for the fact alone and whose answer is the fact
    itself (extractive; view `question`). A small teacher (the embedded 135M) writes a question far more
    reliably than a faithful answer: for it this is the Q&A view that yields; trained with loss on the answer."""

    cloze: int = Field(default=0, ge=0, le=5)
    """Q&A pairs per fact made without the teacher (view `cloze`, `graftlm.generate.cloze`): the fact's
    sentence with one of its numbers, dates or names replaced by a question phrase ("The island covers how many
    square kilometres?"), answered by the sentence. Correct by construction and free; each asks for a
    different part of the fact. Trained with loss on the answer."""

    reverse_qa: int = Field(default=1, ge=0, le=5)
    """Q&A pairs per fact asked the other way round: the question gives the attribute, the answer names the
    entity."""

    paraphrase: int = Field(default=1, ge=0, le=5)
    """Restatements of each fact, in other words with the same names and numbers (document-style text,
    trained on every token)."""

    relations: int = Field(default=3, ge=0, le=20)
    """Entity pairs per chunk (the most frequent names and numbers co-occurring in it) for which the teacher
    writes how they relate according to the chunk (EntiGraph-style passages, trained on every token)."""

    rewrites: tuple[RewriteKind, ...] = ("faq", "newcomer", "key_points")
    """Whole-chunk rewrites written for every chunk: an FAQ, an explanation for a newcomer, a list of key
    points (trained on every token)."""

    target: int = Field(default=3, ge=1)
    """Views kept per fact below which a fact is reported as under target (coverage accounting)."""

    @property
    def qa_per_fact(self) -> int:
        """Q&A views asked for per fact, of every kind (`qa`, `question`, `cloze`, `reverse_qa`)."""
        return self.qa + self.question + self.cloze + self.reverse_qa


class GenerateConfig(Section):
    """How much synthetic data to make per leaf and how to filter it."""

    samples_per_leaf: int = Field(default=30, ge=1)
    """Target number of kept training samples per leaf (before auxiliary knowledge tasks). Extra kept
    candidates beyond it are dropped (counted as `select: over_target`). In facts mode (`facts` not `off`) a
    knowledge leaf's Q&A views (`qa`, `question`, `cloze`, `reverse_qa`) are what `views` asks for per fact, so
    the cap is this or their number, whichever is larger: none is cut. Document-style views (paraphrases,
    relation passages, rewrites) are not capped, like auxiliary tasks."""

    seed: int = 42
    """Random seed for sampling seeds, held-out splits and teacher sampling."""

    oversample: float = Field(default=2.0, ge=1.0)
    """Candidates asked for per target sample, to cover rejects and duplicates (2.0 = twice as many)."""

    questions_per_call: int = Field(default=3, ge=1, le=20)
    """Questions asked for in one completion (skills). Several completions are sampled (`n`) at
    `question_temperature`, never one greedy completion. Use 1 for very small teachers."""

    questions_per_context: int = Field(default=3, ge=1, le=20)
    """Grounded skills: questions asked for about each generated context."""

    qa_per_call: int = Field(default=3, ge=1, le=20)
    """Knowledge: question-answer pairs asked for in one completion about one chunk."""

    question_temperature: float = Field(default=0.9, gt=0.0, le=2.0)
    """Sampling temperature for new questions and Q&A pairs (must be > 0 for diversity)."""

    context_temperature: float = Field(default=0.7, gt=0.0, le=2.0)
    """Sampling temperature for new grounded-skill contexts (InstructLab uses 0.7)."""

    answer_temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    """Sampling temperature for answers and auxiliary knowledge tasks."""

    judge_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    """Sampling temperature for every judgment (question filter, pair rating, knowledge check)."""

    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    """Nucleus sampling for sampled requests (questions, contexts, answers)."""

    max_tokens: int = Field(default=512, ge=16)
    """Largest completion for questions, contexts, answers and summaries."""

    judge_max_tokens: int = Field(default=256, ge=8)
    """Largest completion for judgments."""

    judge_mode: Literal["auto", "probabilities", "text"] = "auto"
    """How the question check (yes/no) and the pair rating (1..3) are read: `auto` compares the probabilities
    of the allowed verdicts where the judge reports them (a local model, or a server returning `logprobs`),
    else parses the judge's text; `text` always parses text."""

    judge_questions: bool = True
    """Skills: let the judge filter each new question 0/1 (on task, answerable by a text model, safe)."""

    rating_threshold: int = Field(default=2, ge=1, le=3)
    """Skills: keep question-answer pairs the judge rates at least this (1 wrong/unsafe, 2 correct but
    brief, 3 excellent)."""

    rate_pairs: bool = True
    """Skills: let the judge rate each question-answer pair (see `rating_threshold`). Switch off only for
    teachers too small to judge (the CPU demo's 135M model cannot write a rating)."""

    judge_knowledge: bool = True
    """Knowledge: keep only Q&A pairs the judge finds faithful to the chunk, relevant, and
    answerable without seeing it. Switch off only for teachers too small to judge."""

    dedup_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    """Near-duplicate threshold: two questions whose word 1-2-gram sets have a Jaccard similarity at or
    above it are duplicates (checked within a leaf, against the leaf's seeds and its held-out items)."""

    chunk_tokens: int = Field(default=500, ge=32)
    """Knowledge: largest chunk of a document, in tokens of the teacher's tokenizer when it is a local
    model, else estimated from the word count. Chunks follow headings and paragraphs."""

    seeds_per_chunk: int = Field(default=1, ge=1, le=5)
    """Knowledge: seed contexts (with their Q&A) shown as examples with each chunk; seeds rotate over
    chunks, so cost grows linearly with the number of chunks."""

    facts: Literal["teacher", "sentences", "off"] = "teacher"
    """Knowledge: how a chunk's atomic facts are found before views of each are written: the teacher lists
    them (`teacher`), or the chunk's sentences are its facts, no teacher call (`sentences`, for small
    teachers such as the embedded 135M model), or no facts-first stage (`off`: per-chunk Q&A units only)."""

    @field_validator("facts", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML reads a bare `off` as false: take it for `off`."""
        return "off" if value is False else value

    views: ViewsConfig = Field(default_factory=ViewsConfig)
    """Knowledge, facts mode: views written per fact and per chunk (see `generate.views.*`)."""

    aux_tasks: tuple[AuxTask, ...] = ("detailed_summary", "extractive_summary", "atomic_facts")
    """Knowledge: auxiliary tasks written for every chunk (document in the prompt, trained unmasked)."""

    eval_seeds_per_leaf: int = Field(default=1, ge=0)
    """Skills: seed examples per leaf held out for evaluation before generation (never shown to the
    teacher). A leaf always keeps at least one seed for generation."""

    eval_qas_per_seed: int = Field(default=1, ge=0)
    """Knowledge: Q&A of each seed context held out for evaluation before generation (each seed keeps
    at least one Q&A as an example)."""

    eval_generated_share: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of each leaf's source groups (document chunks for knowledge, seeds for skills) whose generated
    items are held out for the reported evaluation; nothing of a held-out chunk is trained on. Whole groups
    move, never single items, so no sibling of a test question stays in training."""

    eval_selection_share: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of each leaf's source groups held out as the selection split: it scores checkpoints during
    training and is never reported. 0: checkpoints are scored on the reported items (a warning says so)."""

    max_failed_share: float = Field(default=0.2, ge=0.0, le=1.0)
    """Largest share of teacher requests that may fail (after the client's own retries) with the run
    still finishing; failed requests are counted as rejects. Above it the run stops with an error,
    keeping its finished work, so a rerun retries the failed requests."""

    preview_samples: int = Field(default=4, ge=1)
    """`--preview`: how many samples to make for the one previewed leaf."""
