"""Generation options that `graft run` relies on, checked with the fake teacher (no model)."""

from __future__ import annotations

import json
from pathlib import Path

from graftlm.artifacts import read_jsonl
from graftlm.config import recipe_from_dict
from graftlm.testing.taxonomy import build_taxonomy


def skill_taxonomy(root: Path) -> Path:
    return build_taxonomy(root, {"compositional_skills/writing/polite": {
        "version": 3, "created_by": "tests", "task_description": "Rewrite a command as a polite request.",
        "seed_examples": [{"question": f"Make this polite: do task {i}.", "answer": f"Could you please do task {i}?"}
                          for i in range(5)],
    }})


def test_rate_pairs_off_skips_the_rating_stage(tmp_path: Path) -> None:
    """The CPU demo's 135M teacher cannot write ratings; `generate.rate_pairs: false` skips that stage."""
    from graftlm.generate.run import run_generate

    tax = skill_taxonomy(tmp_path / "tax")
    kept = {}
    for rate in (True, False):
        recipe = recipe_from_dict({"teacher": {"model": "fake"},
                                   "generate": {"samples_per_leaf": 4, "rate_pairs": rate}})
        out = run_generate(tax, tmp_path / f"gen-{rate}", recipe)
        samples = list(read_jsonl(out / "train.jsonl"))
        assert samples
        kept[rate] = samples
        rated = ["rating" in s["metadata"].get("scores", {}) for s in samples]
        assert all(rated) if rate else not any(rated)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["leaves"]
    # Without the rating call, each sample was made with one request fewer.
    assert len(kept[False][0]["metadata"]["request_hashes"]) < len(kept[True][0]["metadata"]["request_hashes"])
