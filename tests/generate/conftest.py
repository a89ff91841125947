"""A miniature taxonomy for the generation tests: a freeform skill, a grounded skill and a knowledge
leaf whose document lives in a real local git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.testing.taxonomy import build_taxonomy, docs_repo

DOC = """# The Brindle Valley

The Brindle Valley is a fictional valley in the north of the Karsk Mountains. It is 48 kilometres long.
The valley is drained by the Osk River, which flows into Lake Tamm.

## Towns

The largest town is Hollin, with 9,200 inhabitants. Hollin was founded in 1312 by salt traders.
The second town is Marrow Bend, known for its wooden bridge built in 1790.

## Economy

Most people in the valley work in sheep farming and in the wool mills of Hollin.
The Brindle wool fair is held every October and draws buyers from four countries.
A narrow-gauge railway links Hollin with the lowland city of Dremmel since 1902.
"""

FREEFORM_SEEDS = [
    ("Write a polite note asking a neighbour to trim a hedge.", "Dear neighbour, would you kindly trim the hedge?"),
    ("Write a polite request to a landlord to fix a leaking tap.", "Dear landlord, could you please fix the tap?"),
    ("Write a polite message asking a colleague to share slides.", "Hi, could you share the slides with me?"),
    ("Write a polite email asking a shop for a refund.", "Hello, I would be grateful for a refund of my order."),
    ("Write a polite reminder about an unpaid invoice.", "Dear client, a gentle reminder that invoice 12 is due."),
]

GROUNDED_SEEDS = [
    ("Summarize the passage in one sentence.", "Otters returned to the river after it was cleaned.",
     "In 1990 the river was polluted and no otters lived there. After a clean-up that took ten years, "
     "the water became clear again and the first otters were seen in 2003."),
    ("Give the passage a one-sentence summary.", "A baker rebuilt her shop after a fire and reopened it.",
     "The bakery on Elm Street burned down in a winter fire. Its owner, Rosa, spent a year rebuilding it "
     "with help from neighbours and reopened with a bigger oven."),
    ("Summarize this in a single sentence.", "The town replaced its buses with electric ones.",
     "The town council decided in 2019 to replace all diesel buses. By 2023 every bus on the twelve "
     "routes was electric, and noise on the main street dropped noticeably."),
    ("Write a one-sentence summary of the passage.", "A school garden taught pupils to grow food.",
     "Pupils at the village school planted a garden behind the gym. They grew beans, potatoes and herbs, "
     "and the kitchen used the harvest for school lunches in autumn."),
    ("Summarize the passage briefly in one sentence.", "The library began lending tools as well as books.",
     "The public library added a tool shelf in 2021. Members can now borrow drills, ladders and saws "
     "for a week, and the shelf became the most popular part of the library."),
]

KNOWLEDGE_SEEDS = [
    ("The Brindle Valley is 48 kilometres long and drained by the Osk River.",
     [("How long is the Brindle Valley?", "It is 48 kilometres long."),
      ("Which river drains the Brindle Valley?", "The Osk River."),
      ("Where does the Osk River flow into?", "Into Lake Tamm.")]),
    ("Hollin is the largest town, with 9,200 inhabitants, founded in 1312 by salt traders.",
     [("What is the largest town of the Brindle Valley?", "Hollin."),
      ("How many people live in Hollin?", "9,200 people."),
      ("Who founded Hollin?", "Salt traders founded Hollin in 1312.")]),
    ("Marrow Bend is known for its wooden bridge from 1790.",
     [("What is Marrow Bend known for?", "Its wooden bridge."),
      ("When was the bridge of Marrow Bend built?", "In 1790."),
      ("Is Marrow Bend the largest town?", "No, it is the second town.")]),
    ("Sheep farming and wool mills employ most people in the valley.",
     [("What do most people in the valley work in?", "Sheep farming and wool mills."),
      ("Where are the wool mills?", "In Hollin."),
      ("What kind of farming is common in the valley?", "Sheep farming.")]),
    ("The Brindle wool fair is held every October; a railway links Hollin with Dremmel since 1902.",
     [("When is the Brindle wool fair held?", "Every October."),
      ("Which city does the railway link Hollin with?", "Dremmel."),
      ("Since when does the railway run?", "Since 1902.")]),
]


def make_taxonomy(root: Path, *, knowledge: bool = True) -> Path:
    """Write the miniature taxonomy under `root/taxonomy` and return that folder."""
    leaves: dict[str, dict] = {
        "compositional_skills/writing/polite": {
            "version": 3, "created_by": "tests", "task_description": "Write polite requests.",
            "seed_examples": [{"question": q, "answer": a} for q, a in FREEFORM_SEEDS]},
        "compositional_skills/grounded/summary": {
            "version": 3, "created_by": "tests", "task_description": "Summarize a passage in one sentence.",
            "seed_examples": [{"context": c, "question": q, "answer": a} for q, a, c in GROUNDED_SEEDS]},
    }
    if knowledge:
        repo, commit = docs_repo(root / "docs-repo", {"brindle.md": DOC})
        leaves["knowledge/geography/brindle"] = {
            "version": 3, "created_by": "tests", "domain": "fictional geography",
            "document_outline": "The Brindle Valley: rivers, towns and economy.",
            "document": {"repo": str(repo), "commit": commit, "patterns": ["*.md"]},
            "seed_examples": [{"context": c, "questions_and_answers": [{"question": q, "answer": a} for q, a in qas]}
                              for c, qas in KNOWLEDGE_SEEDS]}
    return build_taxonomy(root / "taxonomy", leaves)


@pytest.fixture
def taxonomy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRAFTLM_HOME", str(tmp_path / "home"))
    return make_taxonomy(tmp_path)
