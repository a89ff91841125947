"""What the three pipelines share: the run context, a unit of work and its result, sample building.

A *unit* is the work that one seed (skills) or one chunk (knowledge) starts: its requests, parsing and
judging. A unit's result (kept candidates and rejects) is appended to the run's journal as one line
when the unit finishes, so a rerun skips finished units and the call cache replays the requests of
unfinished ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from graftlm.artifacts import hash_obj
from graftlm.config.generate import GenerateConfig
from graftlm.generate.parse import Reject
from graftlm.generate.pool import Reply, RequestPool
from graftlm.records import SYSTEM_PROMPT, Sample
from graftlm.taxonomy.model import QA, Leaf
from graftlm.teacher.base import SamplingOptions

# Request priorities: later stages first, so items finish early and memory stays flat.
PRIORITY = {"rate": 0, "judge_knowledge": 0, "answer": 1, "judge_question": 2, "aux": 3,
            "questions": 4, "knowledge_qa": 4, "contexts": 5}


@dataclass
class Context:
    """Everything a unit needs: config, the teacher and judge pools, and a callback per kept candidate."""

    config: GenerateConfig
    teacher: RequestPool
    judge: RequestPool
    teacher_id: str
    judge_id: str
    on_kept: Callable[[str], None] = lambda leaf: None

    def sampled(self, n: int = 1, temperature: float | None = None) -> SamplingOptions:
        c = self.config
        return SamplingOptions(temperature=c.question_temperature if temperature is None else temperature,
                               top_p=c.top_p, max_tokens=c.max_tokens, n=n, seed=c.seed)

    def judging(self) -> SamplingOptions:
        c = self.config
        return SamplingOptions(temperature=c.judge_temperature, max_tokens=c.judge_max_tokens, n=1, seed=c.seed)

    def answering(self) -> SamplingOptions:
        c = self.config
        return SamplingOptions(temperature=c.answer_temperature, top_p=c.top_p if c.answer_temperature > 0 else 1.0,
                               max_tokens=c.max_tokens, n=1, seed=c.seed)


def candidates_per_leaf(config: GenerateConfig) -> int:
    """How many candidates generation asks for per leaf: `samples_per_leaf * oversample`, rounded up.
    The dry-run estimate uses the same number."""
    return math.ceil(config.samples_per_leaf * config.oversample)


@dataclass(frozen=True)
class ChunkText:
    """The part of a document chunk a unit asks about, with the provenance its samples carry."""

    chunk_id: str
    doc: str
    doc_sha256: str
    text: str


@dataclass(frozen=True)
class FreeformPayload:
    """One seed of a freeform skill: questions like it, then answers."""

    KIND: ClassVar[str] = "freeform"
    seed: int
    question: str
    answer: str
    n_questions: int


@dataclass(frozen=True)
class GroundedPayload:
    """One seed of a grounded skill: new contexts like its context, then questions about each."""

    KIND: ClassVar[str] = "grounded"
    seed: int
    question: str
    answer: str
    context: str | None
    n_contexts: int


@dataclass(frozen=True)
class KnowledgeExample:
    """A seed's context and its training question-answer pairs, shown to the teacher as an example."""

    seed: int
    context: str
    qas: tuple[QA, ...]


@dataclass(frozen=True)
class KnowledgePayload:
    """One chunk of a knowledge leaf's documents: question-answer pairs about it, then the judge's check."""

    KIND: ClassVar[str] = "knowledge"
    chunk: ChunkText
    examples: tuple[KnowledgeExample, ...]
    n_pairs: int


@dataclass(frozen=True)
class AuxPayload:
    """One auxiliary task (summary, atomic facts...) of one chunk."""

    KIND: ClassVar[str] = "aux"
    chunk: ChunkText
    task: str


Payload = FreeformPayload | GroundedPayload | KnowledgePayload | AuxPayload
"""What a unit asks about; its type says which pipeline runs it."""


@dataclass
class Unit:
    """One seed or chunk of one leaf, and what to ask about it."""

    leaf: Leaf
    index: int
    payload: Payload
    run_key: str = ""
    """Hash of what else shapes the unit's output (generate config, teacher and judge): a changed
    config or teacher gives new unit ids, so the journal never serves stale results."""
    unit_id: str = ""

    @property
    def kind(self) -> str:
        """`freeform`, `grounded`, `knowledge` or `aux`."""
        return self.payload.KIND

    def __post_init__(self) -> None:
        if not self.unit_id:
            self.unit_id = hash_obj([self.kind, self.leaf.name, self.index, asdict(self.payload), self.run_key])[:24]


@dataclass
class UnitResult:
    """What one unit produced: the count of candidates generated, kept candidates, rejects."""

    unit_id: str
    leaf: str
    generated: int = 0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    """Knowledge: the fact records of the unit's chunk (`graftlm.generate.coverage`)."""

    def reject(self, stage: str, reason: str, text: str = "", **extra: Any) -> None:
        self.rejects.append({"leaf": self.leaf, "unit": self.unit_id, "stage": stage, "reason": reason,
                             "text": text, **extra})

    def reject_parse(self, stage: str, rejects: list[Reject], **extra: Any) -> None:
        for r in rejects:
            self.reject(stage, r.reason, r.text, **extra)

    def to_json(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "leaf": self.leaf, "generated": self.generated,
                "candidates": self.candidates, "rejects": self.rejects, "facts": self.facts}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnitResult:
        return cls(d["unit_id"], d["leaf"], int(d.get("generated", 0)), list(d.get("candidates", [])),
                   list(d.get("rejects", [])), list(d.get("facts", [])))


def failed(reply: Reply) -> str | None:
    """The reject reason of a failed request, or None when it answered."""
    if reply.error:
        return f"teacher_error:{reply.error}"
    if not reply.texts:
        return "empty"
    return None


def make_sample(leaf: Leaf, user: str, assistant: str, *, task: str, unmask: bool = False,
                **metadata: Any) -> dict[str, Any]:
    """A `train.jsonl` record (as a dict) with the provenance the later stages use."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user},
                {"role": "assistant", "content": assistant}]
    meta = {"leaf": leaf.name, "leaf_type": leaf.type.value, "branch": leaf.branch, "task": task,
            "seed": None, "chunk_id": None, "doc_sha256": None, **metadata}
    return Sample(id=hash_obj([leaf.name, messages])[:20], messages=messages, metadata=meta,
                  unmask=unmask).to_json()
