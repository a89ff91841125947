"""The compiled schema checks find exactly what the general `jsonschema` validator finds (InstructLab's
own way of applying the same schemas), on the real corpus and on mutations of it."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from graftlm.taxonomy.layout import find_qna_files
from graftlm.taxonomy.schema import checker, compile_schema, jsonschema_validator, load_schema_json
from graftlm.taxonomy.validate import file_version
from graftlm.taxonomy.yamlload import YamlReadError, load_yaml

SCHEMAS = [(v, n) for v in (1, 2, 3) for n in ("compositional_skills", "knowledge")
           if not (load_schema_json(v, n) or {}).get("deprecated")]


def findings(version: int, name: str, data: Any) -> tuple[set[tuple[str, tuple]], set[tuple[str, tuple]]]:
    ours = {(v.validator, tuple(v.absolute_path)) for v in checker(version, name)(data)}
    theirs = {(e.validator, tuple(e.absolute_path)) for e in jsonschema_validator(version, name).iter_errors(data)}
    return ours, theirs


def mutations(data: dict[str, Any], rng: random.Random) -> list[Any]:
    out: list[Any] = []
    for key in list(data):
        d = copy.deepcopy(data)
        del d[key]
        out.append(d)
        for bad in (None, 7, "", [], {"x": 1}, True, 3.0):
            d = copy.deepcopy(data)
            d[key] = bad
            out.append(d)
    seeds = data.get("seed_examples")
    if isinstance(seeds, list) and seeds:
        d = copy.deepcopy(data)
        d["seed_examples"] = seeds[:2]
        out.append(d)
        d = copy.deepcopy(data)
        d["seed_examples"] = [*seeds, copy.deepcopy(seeds[0])]
        out.append(d)
        for _ in range(6):
            d = copy.deepcopy(data)
            item = rng.choice(d["seed_examples"])
            if isinstance(item, dict) and item:
                k = rng.choice(list(item))
                item[k] = rng.choice([None, "", 5, ["a"], {"q": "x"}, item[k]])
                if rng.random() < 0.3:
                    item["extra"] = "x"
            out.append(d)
    d = copy.deepcopy(data)
    d["surprise"] = 1
    out.append(d)
    return out


def test_compiled_checks_match_jsonschema_on_corpus_and_mutations(corpus_dir: Path) -> None:
    rng = random.Random(0)
    compared = 0
    for f in sorted(find_qna_files(corpus_dir / "instructlab-taxonomy" / "files")):
        try:
            data = load_yaml(f.read_text(encoding="utf-8")).data
        except YamlReadError:
            continue
        if not isinstance(data, dict):
            continue
        version = file_version(data)
        for v, name in SCHEMAS:
            if v != version:
                continue
            cases = [data, *mutations(data, rng)] if compared < 3000 else [data]
            for case in cases:
                ours, theirs = findings(v, name, case)
                assert ours == theirs, (f, v, name)
                compared += 1
    assert compared > 2000


def test_schemas_compile_without_fallback() -> None:
    for v, name in SCHEMAS:
        schema = load_schema_json(v, name)
        assert schema is not None
        compile_schema(schema, lambda ref, v=v: load_schema_json(v, ref.removeprefix("./").removesuffix(".json")))


@pytest.mark.parametrize("value,valid", [(3, True), (3.0, True), (True, False), ("3", False), (4, False)])
def test_version_const_and_integer_type(value: Any, valid: bool) -> None:
    data = {"version": value, "created_by": "me", "task_description": "t",
            "seed_examples": [{"question": f"q{i}", "answer": "a"} for i in range(5)]}
    ours, theirs = findings(3, "compositional_skills", data)
    assert ours == theirs
    assert (not ours) is valid
