"""What the three pipelines share: the run context, a unit of work and its result, sample building.

A *unit* is the work that one seed (skills) or one chunk (knowledge) starts: its requests, parsing and
judging. A unit's result (kept candidates and rejects) is appended to the run's journal as one line
when the unit finishes, so a rerun skips finished units and the call cache replays the requests of
unfinished ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graftlm.artifacts import hash_obj
from graftlm.config.generate import GenerateConfig
from graftlm.generate.parse import Reject
from graftlm.generate.pool import Reply, RequestPool
from graftlm.records import SYSTEM_PROMPT, Sample
from graftlm.taxonomy.model import Leaf
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


@dataclass
class Unit:
    """One seed or chunk of one leaf, and what to ask about it."""

    kind: str  # "freeform" | "grounded" | "knowledge" | "aux"
    leaf: Leaf
    index: int
    payload: dict[str, Any]
    run_key: str = ""
    """Hash of what else shapes the unit's output (generate config, teacher and judge): a changed
    config or teacher gives new unit ids, so the journal never serves stale results."""
    unit_id: str = ""

    def __post_init__(self) -> None:
        if not self.unit_id:
            self.unit_id = hash_obj([self.kind, self.leaf.name, self.index, self.payload, self.run_key])[:24]


@dataclass
class UnitResult:
    """What one unit produced: the count of candidates generated, kept candidates, rejects."""

    unit_id: str
    leaf: str
    generated: int = 0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, stage: str, reason: str, text: str = "", **extra: Any) -> None:
        self.rejects.append({"leaf": self.leaf, "unit": self.unit_id, "stage": stage, "reason": reason,
                             "text": text, **extra})

    def reject_parse(self, stage: str, rejects: list[Reject], **extra: Any) -> None:
        for r in rejects:
            self.reject(stage, r.reason, r.text, **extra)

    def to_json(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "leaf": self.leaf, "generated": self.generated,
                "candidates": self.candidates, "rejects": self.rejects}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnitResult:
        return cls(d["unit_id"], d["leaf"], int(d.get("generated", 0)), list(d.get("candidates", [])),
                   list(d.get("rejects", [])))


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
