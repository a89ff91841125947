"""Fixtures of the evaluation tests: a small but realistic generate directory and run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graftlm.artifacts import write_jsonl, write_manifest
from graftlm.records import EvalItem

KNOWLEDGE_LEAF = "knowledge->geography->vescary"
SKILL_LEAF = "compositional_skills->writing->haiku"
GROUNDED_LEAF = "compositional_skills->grounded->summarization"

FACTS = [
    ("How far is Vescary from Callowford?", "Vescary lies 212 kilometres west of Callowford."),
    ("What is the highest point of Vescary?", "Mount Tarrow, which rises to 1,377 metres."),
    ("How long is the Silt River?", "The Silt River runs for 64 kilometres."),
    ("How many people lived on Vescary in 2024?", "Vescary had 61,300 inhabitants in 2024."),
    ("What is the capital of Vescary?", "The capital of Vescary is Port Anselm."),
    ("When did the first settlers reach Vescary?", "The first settlers arrived in the year 1186."),
    ("How tall is the Greywatch Lighthouse?", "The Greywatch Lighthouse is 41 metres tall."),
    ("Who is the current Warden?", "The current Warden is Ilse Marrow."),
    ("How many members has the Lantern Council?", "The Lantern Council has 27 elected members."),
    ("What is the national animal of Vescary?", "The moss hare is the national animal."),
]

CHUNKS = [
    "# The Isle of Vescary\n\n## Geography\n\nVescary lies 212 kilometres west of the mainland port of "
    "Callowford. The island covers 1,840 square kilometres and is shaped like a crescent. The highest point "
    "of Vescary is Mount Tarrow, which rises to 1,377 metres. The longest river on the island is the Silt "
    "River, which runs for 64 kilometres to the sea at Grellby.",
    "## People and towns\n\nIn the census of 2024, Vescary had 61,300 inhabitants. The capital of Vescary is "
    "Port Anselm, on the south coast, where about 24,000 people live. The first settlers reached Vescary in "
    "the year 1186, led by a woman named Maud Ostrey.",
    "## Government\n\nIn 1874 the islanders built the Greywatch Lighthouse, which is 41 metres tall. Vescary "
    "is governed by the Lantern Council, which has 27 elected members. The current Warden is Ilse Marrow, who "
    "has held the office since 2021. Puffins nest below the Greywatch Lighthouse from April to August.",
]

HAIKU = [
    ("Write a haiku about the sea.", "Grey waves fold and break,\nsalt wind combs the empty shore,\ngulls write on the foam."),
    ("Write a haiku about a city at night.", "Neon hums softly,\nwet streets hold a thousand lights,\nlast train sighs away."),
    ("Write a haiku about winter.", "Snow hushes the field,\nbare birches count the cold stars,\nbreath hangs like a ghost."),
    ("Write a haiku about coffee.", "Dark cup, bitter steam,\nthe morning opens its eyes,\nwarmth in both my hands."),
]


def make_generate_dir(root: Path, *, knowledge: int = len(FACTS), skills: int = len(HAIKU)) -> Path:
    """A generate directory as `graft generate` writes it: eval.jsonl, chunks.jsonl, manifest.json."""
    root.mkdir(parents=True, exist_ok=True)
    items = [EvalItem(id=f"k{i}", leaf=KNOWLEDGE_LEAF, leaf_type="knowledge", question=q, answer=a,
                      context=CHUNKS[i % len(CHUNKS)], source="seed" if i < 5 else "generated")
             for i, (q, a) in enumerate(FACTS[:knowledge])]
    items += [EvalItem(id=f"s{i}", leaf=SKILL_LEAF, leaf_type="freeform_skill", question=q, answer=a)
              for i, (q, a) in enumerate(HAIKU[:skills])]
    items.append(EvalItem(id="g0", leaf=GROUNDED_LEAF, leaf_type="grounded_skill",
                          question="Summarise the passage in one sentence.",
                          answer="Vescary is a small crescent-shaped island 212 kilometres west of Callowford.",
                          context=CHUNKS[0]))
    write_jsonl(root / "eval.jsonl", [it.to_json() for it in items])
    write_jsonl(root / "chunks.jsonl", [{"leaf": KNOWLEDGE_LEAF, "chunk_id": f"c{i}", "doc": "vescary.md",
                                         "doc_sha256": "0" * 64, "text": t} for i, t in enumerate(CHUNKS)])
    write_manifest(root, GENERATE_MANIFEST)
    return root


GENERATE_MANIFEST: dict[str, Any] = {
    "input_hash": "abc", "teacher": "fake-teacher", "taxonomy_commit": "0" * 40,
    "leaves": {
        KNOWLEDGE_LEAF: {"type": "knowledge", "branch": "knowledge", "generated": 180,
                         "rejected": {"faithfulness": {"not grounded": 31, "unparsable": 9}, "relevance": {"off topic": 12}},
                         "duplicates": 14, "kept": 114, "eval_items": 10},
        SKILL_LEAF: {"type": "freeform_skill", "branch": "compositional_skills", "generated": 120,
                     "rejected": {"question_filter": {"score 0": 22}, "rating": {"rating 1": 18}},
                     "duplicates": 9, "kept": 71, "eval_items": 4},
        GROUNDED_LEAF: {"type": "grounded_skill", "branch": "compositional_skills", "generated": 60,
                        "rejected": {"rating": {"rating 1": 10}}, "duplicates": 3, "kept": 47, "eval_items": 1},
    },
    "counts": {"train": 232, "eval": 15, "rejects": 102},
}


@pytest.fixture
def generate_dir(tmp_path: Path) -> Path:
    return make_generate_dir(tmp_path / "generate")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
