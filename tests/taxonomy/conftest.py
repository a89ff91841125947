"""Helpers for taxonomy tests: leaf files written from text, and real git repositories."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}

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
  commit: {commit}
  patterns:
{pats}"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
    return path


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_all(repo: Path, message: str = "commit") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def taxonomy(tmp_path: Path) -> Path:
    """A small valid taxonomy: a freeform skill, a grounded skill, a knowledge leaf, a foundational skill."""
    root = tmp_path / "taxonomy"
    write(root / "compositional_skills" / "writing" / "polite" / "qna.yaml", SKILL)
    write(root / "compositional_skills" / "grounded" / "summary" / "qna.yaml", GROUNDED)
    write(root / "knowledge" / "geography" / "vescary" / "qna.yaml", knowledge_yaml())
    write(root / "foundational_skills" / "reasoning" / "logic" / "qna.yaml", SKILL)
    return root
