"""The records that stages exchange: training samples and held-out evaluation items.

`train.jsonl` has InstructLab's shape: {"id", "messages": [system, user, assistant], "metadata", "unmask"}.
`eval.jsonl` has one `EvalItem` a line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SYSTEM_PROMPT = (
    "I am a helpful AI assistant. I answer questions accurately and concisely, "
    "and I say so when I do not know."
)
"""The system message written into every training sample and used when evaluating."""


@dataclass
class Sample:
    """One training sample. metadata keys used downstream: `leaf`, `leaf_type` (LeafType value),
    `branch`, `task` (e.g. "qa", "detailed_summary", "extractive_summary", "atomic_facts", "skill"),
    `seed`, `chunk_id`, `doc_sha256`, `teacher`, `request_hashes`, `scores`."""

    id: str
    messages: list[dict[str, str]]
    metadata: dict[str, Any] = field(default_factory=dict)
    unmask: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Sample:
        return cls(id=str(d["id"]), messages=list(d["messages"]), metadata=dict(d.get("metadata") or {}),
                   unmask=bool(d.get("unmask", False)))


@dataclass
class EvalItem:
    """One held-out evaluation item of a leaf. `source`: "seed" or "generated".
    For grounded skills `context` holds the passage the question is about."""

    id: str
    leaf: str
    leaf_type: str
    question: str
    answer: str
    context: str | None = None
    source: str = "seed"
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def split(self) -> str:
        """`test` (reported by `graft eval`) or `selection` (scores checkpoints, never reported)."""
        return str(self.metadata.get("split") or "test")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalItem:
        return cls(**{k: d[k] for k in ("id", "leaf", "leaf_type", "question", "answer") },
                   context=d.get("context"), source=d.get("source", "seed"), metadata=dict(d.get("metadata") or {}))
