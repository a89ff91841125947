"""The taxonomy's record types: a leaf and its seeds. Loading and validation live beside this module."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class LeafType(str, Enum):
    KNOWLEDGE = "knowledge"
    FREEFORM_SKILL = "freeform_skill"
    GROUNDED_SKILL = "grounded_skill"


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class SkillSeed:
    """One seed example of a skill leaf; `context` is set for grounded skills."""

    question: str
    answer: str
    context: str | None = None


@dataclass(frozen=True)
class KnowledgeSeed:
    """One seed example of a knowledge leaf: a passage of the documents and Q&A grounded in it."""

    context: str
    qas: tuple[QA, ...]


@dataclass(frozen=True)
class DocumentRef:
    """Where a knowledge leaf's documents are: a git repository at a commit, and glob patterns."""

    repo: str
    commit: str
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class Leaf:
    """One taxonomy leaf (a folder holding `qna.yaml`)."""

    name: str
    """Folder parts below the taxonomy root joined by `->`, e.g. `compositional_skills->writing->poem`."""
    path: Path
    """The leaf's `qna.yaml`."""
    type: LeafType
    branch: str
    """First folder: `knowledge`, `compositional_skills` or `foundational_skills`."""
    version: int
    created_by: str
    task_description: str = ""
    skill_seeds: tuple[SkillSeed, ...] = ()
    knowledge_seeds: tuple[KnowledgeSeed, ...] = ()
    domain: str = ""
    document_outline: str = ""
    document: DocumentRef | None = None
    attribution: dict[str, str] = field(default_factory=dict)

    @property
    def safe_name(self) -> str:
        """File-safe form of the name (`->` and unsafe characters become `_`)."""
        out = self.name.replace("->", "_")
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in out)

    @property
    def is_knowledge(self) -> bool:
        return self.type is LeafType.KNOWLEDGE
