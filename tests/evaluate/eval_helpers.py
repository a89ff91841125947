"""Builders for the evaluation tests: a small but realistic generate directory and run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_scores(n_knowledge: int = len(FACTS)) -> dict[str, Any]:
    """scores.json as `run_eval` builds it, from answers where the trained model knows the facts and the
    base model does not, skills unchanged, and one unparsable judgment."""
    from graftlm.config import recipe_from_dict
    from graftlm.evaluate.qa import ItemResult
    from graftlm.evaluate.run import build_scores
    from graftlm.judging import parse_knowledge_judgment, parse_score_judgment

    results = []
    for i, (q, a) in enumerate(FACTS[:n_knowledge]):
        r = ItemResult(EvalItem(id=f"k{i}", leaf=KNOWLEDGE_LEAF, leaf_type="knowledge", question=q, answer=a))
        r.answers = {"trained": a, "base": "I do not know."}
        r.judgments = {"trained": parse_knowledge_judgment("Matches. Verdict: correct\nRating: [[9]]"),
                       "base": parse_knowledge_judgment("No fact. Verdict: incorrect\nRating: [[2]]" if i else "???")}
        r.score_metrics()
        results.append(r)
    for i, (q, a) in enumerate(HAIKU):
        r = ItemResult(EvalItem(id=f"s{i}", leaf=SKILL_LEAF, leaf_type="freeform_skill", question=q, answer=a))
        r.answers = {"trained": "A haiku.", "base": "A haiku."}
        r.judgments = {"trained": parse_score_judgment(f"Rating: [[{5 + i % 2}]]"),
                       "base": parse_score_judgment(f"Rating: [[{6 - i % 2}]]")}
        results.append(r)
    mt_rows = [{"question": {"question_id": 81 + i, "category": "writing", "turns": ["a", "b"]},
                "answers": {"trained": ["x", "y"], "base": ["x", "y"]},
                "judgments": {"trained": [parse_score_judgment("[[6]]"), parse_score_judgment("[[5]]")],
                              "base": [parse_score_judgment("[[6]]"), parse_score_judgment("[[6]]")]}}
               for i in range(6)]
    drift_rows = [{"kl": 0.02 + 0.001 * i, "nll_base": 2.0 + 0.1 * i, "nll_trained": 2.05 + 0.1 * i} for i in range(16)]
    recipe = recipe_from_dict({"eval": {"bootstrap_samples": 200}})
    scores = build_scores({"trained": "runs/demo/train/skills/checkpoints/step-40", "base": "default"}, results,
                          mt_rows, [], drift_rows, {}, recipe, judged=True, skipped=[])
    scores["judge"] = "default"
    return scores


def make_run_dir(root: Path, parts: tuple[str, ...] = ("generate", "train", "eval")) -> Path:
    """A run folder with fabricated but realistic stage outputs (only the named parts)."""
    from graftlm.artifacts import append_jsonl, write_json

    root.mkdir(parents=True, exist_ok=True)
    if "generate" in parts:
        make_generate_dir(root / "generate")
    if "train" in parts:
        phases = ["knowledge-1", "skills"]
        for p, name in enumerate(phases):
            d = root / "train" / name
            d.mkdir(parents=True, exist_ok=True)
            for step in range(1, 41):
                append_jsonl(d / "metrics.jsonl", {
                    "phase": name, "step": step, "epoch": 1 + (step - 1) // 10, "samples_seen": step * 8,
                    "loss": 2.5 / (1 + 0.05 * step) + 0.3 * p, "lr": 2e-5 * min(1.0, step / 10),
                    "grad_norm": 1.0, "tokens_per_s": 900.0, "time": 1700000000 + step})
            cks = [{"path": str(d / "checkpoints" / f"step-{s}"), "step": s, "samples_seen": s * 8,
                    "epoch": s // 10, "score": sc} for s, sc in ((10, 0.21), (20, 0.34), (30, 0.39), (40, 0.37))]
            write_manifest(d, {"phase": name, "checkpoints": cks, "selected": cks[2]["path"]})
        write_manifest(root / "train", {"phases": phases, "base_model": "default",
                                        "final_model": str(root / "train" / "skills" / "checkpoints" / "step-30")})
    if "eval" in parts:
        write_json(root / "eval" / "scores.json", make_scores())
        write_manifest(root / "eval", {"stage": "eval"})
    return root
