"""Builders for mixing and training tests: a small generate folder with every kind of sample."""

from __future__ import annotations

from pathlib import Path

from graftlm.artifacts import write_jsonl, write_manifest
from graftlm.records import SYSTEM_PROMPT, Sample

WORDS = ["the", "leaf", "is", "green", "and", "the", "seed", "is", "small", "so", "the", "model", "can", "learn", "a", "fact", "about", "the", "data"]


def sample(sid: str, branch: str, answer_words: int, *, unmask: bool = False, task: str = "qa") -> Sample:
    leaf_type = {"knowledge": "knowledge", "foundational_skills": "freeform_skill",
                 "compositional_skills": "freeform_skill"}[branch]
    answer = " ".join(WORDS[(i + len(sid)) % len(WORDS)] for i in range(answer_words))
    return Sample(
        id=sid,
        messages=[{"role": "system", "content": SYSTEM_PROMPT},
                  {"role": "user", "content": f"Question {sid}: what is the leaf?"},
                  {"role": "assistant", "content": answer.capitalize() + "."}],
        metadata={"leaf": f"{branch}->x", "leaf_type": leaf_type, "branch": branch, "task": task},
        unmask=unmask,
    )


def make_generate_dir(root: Path, *, short: int = 6, long: int = 3, foundational: int = 2,
                      compositional: int = 5) -> Path:
    samples = (
        [sample(f"ks{i}", "knowledge", 5 + i % 4) for i in range(short)]
        + [sample(f"kl{i}", "knowledge", 80 + i, task="detailed_summary", unmask=True) for i in range(long)]
        + [sample(f"f{i}", "foundational_skills", 12) for i in range(foundational)]
        + [sample(f"c{i}", "compositional_skills", 10 + i) for i in range(compositional)]
    )
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "train.jsonl", [s.to_json() for s in samples])
    write_manifest(root, {"stage": "generate", "counts": {"train": len(samples)}})
    return root
