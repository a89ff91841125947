"""Leaf texts for taxonomy tests; files and git repositories are written by `graftlm.testing.taxonomy`."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.testing.taxonomy import build_taxonomy

SKILL = """\
version: 3
created_by: tester
task_description: Rewrite a blunt command as a polite request.
seed_examples:
  - question: "Make this polite: Close the door."
    answer: Could you please close the door?
  - question: "Make this polite: Send the report."
    answer: Could you please send the report?
  - question: "Make this polite: Turn it down."
    answer: Could you please turn it down?
  - question: "Make this polite: Call me."
    answer: Could you please call me?
  - question: "Make this polite: Move the car."
    answer: Could you please move the car?
"""

GROUNDED = """\
version: 3
created_by: tester
task_description: Summarize a passage in one sentence.
seed_examples:
""" + "".join(
    f"""  - context: The library closes for {i} weeks in July for a new roof.
    question: Summarize the passage ({i}).
    answer: The library closes for {i} weeks in July.
"""
    for i in range(1, 6)
)


def knowledge_yaml(repo: str = "https://github.com/example/docs.git", commit: str = "a" * 40,
                   patterns: tuple[str, ...] = ("*.md",)) -> str:
    seeds = "".join(
        f"""  - context: Vescary lies {i}00 kilometres west of Callowford.
    questions_and_answers:
      - question: How far is Vescary from Callowford ({i})?
        answer: It lies {i}00 kilometres west.
      - question: Where is Vescary ({i})?
        answer: West of Callowford.
      - question: What lies west of Callowford ({i})?
        answer: Vescary.
"""
        for i in range(1, 6)
    )
    pats = "".join(f'    - "{p}"\n' for p in patterns)
    return f"""version: 3
created_by: tester
domain: Geography
document_outline: A fictional island.
seed_examples:
{seeds}document:
  repo: {repo}
  commit: "{commit}"
  patterns:
{pats}"""


@pytest.fixture
def taxonomy(tmp_path: Path) -> Path:
    """A small valid taxonomy: a freeform skill, a grounded skill, a knowledge leaf, a foundational skill."""
    return build_taxonomy(tmp_path / "taxonomy", {
        "compositional_skills/writing/polite": SKILL,
        "compositional_skills/grounded/summary": GROUNDED,
        "knowledge/geography/vescary": knowledge_yaml(),
        "foundational_skills/reasoning/logic": SKILL,
    })
