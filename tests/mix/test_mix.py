"""Mixing: phase membership, replay amounts, determinism, stacked, extra datasets, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from graftlm.artifacts import read_jsonl, read_manifest
from graftlm.config.train import ExtraDataset, MixConfig
from graftlm.errors import ConfigError, InputError
from graftlm.mix import answer_words, build_phases, draw, read_samples, run_mix
from graftlm.records import Sample
from tests.samples import make_generate_dir, sample


def _samples() -> list[Sample]:
    return (
        [sample(f"ks{i}", "knowledge", 10) for i in range(8)]
        + [sample(f"kl{i}", "knowledge", 100) for i in range(4)]
        + [sample(f"f{i}", "foundational_skills", 20) for i in range(2)]
        + [sample(f"c{i}", "compositional_skills", 30) for i in range(6)]
    )


def _ids(phase, source: str | None = None) -> list[str]:
    return [s.id for s in phase.samples if source is None or s.metadata["mix"] == source]


def test_phased_split_and_replay() -> None:
    cfg = MixConfig(short_response_words=50, knowledge_2_replay=0.5, skills_replay=0.25)
    phases, skipped = build_phases(_samples(), cfg)
    assert [p.name for p in phases] == ["knowledge-1", "knowledge-2", "skills"]
    assert skipped == []
    k1, k2, sk = phases
    assert sorted(_ids(k1)) == sorted(f"ks{i}" for i in range(8))
    assert sorted(_ids(k2, "own")) == sorted([f"kl{i}" for i in range(4)] + ["f0", "f1"])
    assert len(_ids(k2, "replay")) == 4 and set(_ids(k2, "replay")) <= set(_ids(k1))
    assert sorted(_ids(sk, "own")) == sorted(f"c{i}" for i in range(6))
    replay = _ids(sk, "replay")
    assert len(replay) == round(0.25 * (8 + 6)) and len(set(replay)) == len(replay)
    assert not any(r.startswith("c") for r in replay)
    assert [p.kind for p in phases] == ["knowledge", "knowledge", "skills"]
    assert sk.counts == {"own": 6, "replay": 4, "extra": 0}


def test_short_long_threshold_uses_answer_words() -> None:
    s = sample("x", "knowledge", 7)
    assert answer_words(s) == 7
    k1, k2 = build_phases([s, sample("y", "knowledge", 8)], MixConfig(short_response_words=7))[0][:2]
    assert _ids(k1) == ["x"] and _ids(k2, "own") == ["y"]


def test_mixing_is_deterministic_and_seeded() -> None:
    a = build_phases(_samples(), MixConfig(seed=1))[0]
    b = build_phases(_samples(), MixConfig(seed=1))[0]
    c = build_phases(_samples(), MixConfig(seed=2))[0]
    assert [_ids(p) for p in a] == [_ids(p) for p in b]
    assert [_ids(p) for p in a] != [_ids(p) for p in c]


def test_replay_above_one_repeats_whole_pool() -> None:
    pool = [sample(f"p{i}", "knowledge", 3) for i in range(4)]
    import random

    got = draw(pool, 10, random.Random(0))
    counts = Counter(s.id for s in got)
    assert len(got) == 10 and all(2 <= c <= 3 for c in counts.values())


def test_stacked_has_everything_once() -> None:
    phases, _ = build_phases(_samples(), MixConfig(strategy="stacked"))
    assert len(phases) == 1 and phases[0].name == "stacked" and phases[0].kind == "skills"
    assert sorted(_ids(phases[0])) == sorted(s.id for s in _samples())


def test_empty_phases_are_skipped_with_reason() -> None:
    only_skills = [sample(f"c{i}", "compositional_skills", 5) for i in range(3)]
    phases, skipped = build_phases(only_skills, MixConfig())
    assert [p.name for p in phases] == ["skills"]
    assert [s["name"] for s in skipped] == ["knowledge-1", "knowledge-2"]
    assert all(s["reason"] for s in skipped)


def test_extra_datasets_by_fraction_and_count(tmp_path: Path) -> None:
    extra_file = tmp_path / "mine.jsonl"
    extra_file.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n"
        for i in range(5)))
    rows = read_samples(extra_file, require_id=False)
    cfg = MixConfig(extra=[ExtraDataset(path=str(extra_file), phase="skills", fraction=0.5),
                           ExtraDataset(path=str(extra_file), phase="knowledge-1", count=7)])
    phases, _ = build_phases(_samples(), cfg, [(e, rows) for e in cfg.extra])
    by_name = {p.name: p for p in phases}
    assert len(_ids(by_name["skills"], "extra:mine.jsonl")) == 3  # round(0.5 * 6)
    assert len(_ids(by_name["knowledge-1"], "extra:mine.jsonl")) == 7
    assert _ids(by_name["knowledge-2"], "extra:mine.jsonl") == []
    with pytest.raises(ValueError):
        ExtraDataset(path="x", fraction=0.1, count=2)


def test_run_mix_writes_phases_and_manifest(generate_dir: Path, tmp_path: Path) -> None:
    out = run_mix(generate_dir, tmp_path / "mix", MixConfig())
    manifest = read_manifest(out)
    assert manifest is not None and manifest["strategy"] == "phased"
    for entry in manifest["phases"]:
        lines = list(read_jsonl(out / entry["file"]))
        assert len(lines) == entry["samples"] > 0
        assert {"id", "messages", "metadata", "unmask"} <= set(lines[0])
    # Same inputs: returns without rewriting.
    before = (out / "manifest.json").stat().st_mtime_ns
    run_mix(generate_dir, tmp_path / "mix", MixConfig())
    assert (out / "manifest.json").stat().st_mtime_ns == before
    # Changed config: rewritten.
    run_mix(generate_dir, tmp_path / "mix", MixConfig(strategy="stacked"))
    assert read_manifest(out)["strategy"] == "stacked"  # type: ignore[index]


def test_bad_lines_name_file_line_and_field(tmp_path: Path) -> None:
    gen = make_generate_dir(tmp_path / "g")
    with open(gen / "train.jsonl", "a") as f:
        f.write(json.dumps({"id": "bad", "messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    with pytest.raises(InputError) as e:
        run_mix(gen, tmp_path / "mix", MixConfig())
    loc = e.value.location
    assert loc is not None and loc.file and loc.file.endswith("train.jsonl")
    assert loc.line == 17 and loc.field == "messages"
    with open(gen / "train.jsonl", "a") as f:
        f.write(json.dumps({"id": "bad2", "messages": [{"role": "robot", "content": "x"}]}) + "\n")
    with pytest.raises(InputError, match="role"):
        read_samples(gen / "train.jsonl")


def test_missing_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="train.jsonl"):
        run_mix(tmp_path, tmp_path / "mix", MixConfig())
    gen = make_generate_dir(tmp_path / "g")
    with pytest.raises(ConfigError, match="not found"):
        run_mix(gen, tmp_path / "mix", MixConfig(extra=[ExtraDataset(path=str(tmp_path / "nope.jsonl"))]))
    with pytest.raises(ConfigError, match="stacked"):
        run_mix(gen, tmp_path / "mix", MixConfig(extra=[ExtraDataset(path=str(gen / "train.jsonl"), phase="stacked")]))
