"""The one templating layer: every prompt graftlm sends (generation, judging, evaluation) is a Jinja file in
`graftlm/prompts/`, rendered here with missing values raising instead of rendering empty."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from graftlm.teacher.base import Message

SYSTEM = "You are a careful assistant that writes training data. Follow the requested format exactly."
"""The system message of every generation prompt."""

TEMPLATES = (
    "freeform_questions",
    "grounded_contexts",
    "grounded_questions",
    "judge_question",
    "answer",
    "rate_pair",
    "knowledge_qa",
    "check_knowledge_pair",
    "aux_detailed_summary",
    "aux_extractive_summary",
    "aux_atomic_facts",
    "knowledge_facts",
    "view_qa",
    "view_reverse_qa",
    "view_paraphrase",
    "view_relation",
    "view_rewrite",
)
"""The generation prompts (the fake teacher answers each of them)."""

JUDGE_TEMPLATES = ("judge_knowledge_answer", "judge_skill", "judge_mtbench", "judge_question", "rate_pair")
"""Prompts whose answer is a verdict; each renders a `direct` variant that asks for the verdict alone
(judging by probabilities, `graftlm.judging`)."""


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("graftlm", "prompts"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        autoescape=False,
    )


def render_text(name: str, **variables: Any) -> str:
    """The user message of prompt `name` (a file `prompts/<name>.j2`)."""
    text = _env().get_template(f"{name}.j2").render(**variables)
    return text.strip() + "\n"


def render(name: str, *, system: str = SYSTEM, **variables: Any) -> list[Message]:
    """Chat messages (system + user) for prompt `name`."""
    return [{"role": "system", "content": system}, {"role": "user", "content": render_text(name, **variables)}]
