"""Knowledge QA and skill judging on held-out items (`eval.jsonl`), for base and trained model.

Knowledge leaves: closed-book answers scored by the judge (correct/incorrect + 1..10) and judge-free
(token F1, ROUGE-L). Skill leaves: answers judged 1..10 against the seed answer (MT-Bench-branch style).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graftlm.evaluate.facts import fact_recall
from graftlm.evaluate.judge import Judgment, judge_messages, parse_knowledge_judgment, parse_score_judgment
from graftlm.evaluate.metrics import rouge_l, token_f1
from graftlm.records import SYSTEM_PROMPT, EvalItem
from graftlm.teacher.base import Message

KNOWLEDGE = "knowledge"


def is_knowledge(item: EvalItem) -> bool:
    return item.leaf_type == KNOWLEDGE


def user_prompt(item: EvalItem) -> str:
    """What the evaluated model is asked: the question, after its passage for grounded skills. Knowledge
    questions are closed-book: the document is never shown."""
    if item.context and not is_knowledge(item):
        return f"{item.context.strip()}\n\n{item.question.strip()}"
    return item.question.strip()


def answer_messages(item: EvalItem) -> list[Message]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt(item)}]


def judge_request(item: EvalItem, answer: str) -> list[Message]:
    if is_knowledge(item):
        return judge_messages("judge_knowledge", question=item.question.strip(), reference=item.answer.strip(),
                              answer=answer.strip() or "(no answer)")
    return judge_messages("judge_skill", question=item.question.strip(), reference=item.answer.strip(),
                          context=(item.context or "").strip(), answer=answer.strip() or "(no answer)")


def parse_judgment(item: EvalItem, text: str) -> Judgment:
    return parse_knowledge_judgment(text) if is_knowledge(item) else parse_score_judgment(text)


@dataclass
class ItemResult:
    """One held-out item with every model's answer, judgment and judge-free metrics (by role:
    `trained`, `base`)."""

    item: EvalItem
    answers: dict[str, str] = field(default_factory=dict)
    judgments: dict[str, Judgment] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def evaluator(self) -> str:
        return "knowledge_qa" if is_knowledge(self.item) else "skill_judged"

    facts: dict[str, Any] = field(default_factory=dict)
    """The reference's key facts (`basis`, `facts`) and, by role, the ones each answer stated."""

    def score_metrics(self) -> None:
        if not is_knowledge(self.item):
            return
        keywords = self.item.metadata.get("keywords") or None
        for role, answer in self.answers.items():
            recall = fact_recall(answer, self.item.answer, question=self.item.question, keywords=keywords)
            self.facts.update({"basis": recall.basis, "facts": list(recall.facts)})
            self.facts.setdefault("found", {})[role] = list(recall.found)
            self.metrics[role] = {"fact_recall": recall.score, "token_f1": token_f1(answer, self.item.answer),
                                  "rouge_l": rouge_l(answer, self.item.answer)}

    def values(self, metric: str, role: str) -> float | None:
        """One number of this item for a metric: `fact_recall`, `token_f1`, `rouge_l`, `judge_score`,
        `judge_correct`."""
        if metric in ("fact_recall", "token_f1", "rouge_l"):
            return self.metrics.get(role, {}).get(metric)
        j = self.judgments.get(role)
        if j is None:
            return None
        if metric == "judge_score":
            return j.score
        if metric == "judge_correct":
            return None if j.correct is None else float(j.correct)
        raise KeyError(metric)

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "leaf": self.item.leaf,
            "leaf_type": self.item.leaf_type,
            "item_id": self.item.id,
            "source": self.item.source,
            "question": self.item.question,
            "context": self.item.context,
            "reference": self.item.answer,
            "answers": self.answers,
            "judgments": {role: j.to_json() for role, j in self.judgments.items()},
            "metrics": self.metrics,
            **({"facts": self.facts} if self.facts else {}),
        }


KNOWLEDGE_METRICS = {
    "fact_recall": "fact recall: share of the reference's key facts the answer states (0..1)",
    "judge_correct": "share of answers the judge found correct (0..1)",
    "judge_score": "judge rating (1..10)",
    "token_f1": "token F1 against the reference answer (0..1)",
    "rouge_l": "ROUGE-L F against the reference answer (0..1)",
}
SKILL_METRICS = {"judge_score": "judge rating against the seed answer (1..10)"}
