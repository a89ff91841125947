"""A model spec is parsed once, when the recipe loads; every teacher is built from that parsed value."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from graftlm.config import TeacherConfig, load_recipe, recipe_from_dict
from graftlm.config.model_spec import ModelKind, ModelSpec
from graftlm.errors import ConfigError
from graftlm.teacher.factory import make_teacher


@pytest.mark.parametrize(("text", "kind", "urls", "latency"), [
    ("fake", ModelKind.FAKE, (), 0.0),
    (" fake:0.25 ", ModelKind.FAKE, (), 0.25),
    ("http://a:8000/v1", ModelKind.HTTP, ("http://a:8000/v1",), 0.0),
    ("http://a/v1, https://b/v1", ModelKind.HTTP, ("http://a/v1", "https://b/v1"), 0.0),
    ("default", ModelKind.LOCAL, (), 0.0),
    ("/models/smol.gguf", ModelKind.LOCAL, (), 0.0),
])
def test_specs_parse_into_their_kind(text: str, kind: ModelKind, urls: tuple[str, ...], latency: float) -> None:
    spec = TeacherConfig(model=text).model
    assert isinstance(spec, ModelSpec)
    assert (spec.kind, spec.urls, spec.fake_latency_s) == (kind, urls, latency)
    assert spec == text.strip()  # it is the text as written, so hashes and manifests are unchanged
    assert pickle.loads(pickle.dumps(spec)).kind is kind
    assert TeacherConfig(model=text).model_dump(mode="json")["model"] == text.strip()


@pytest.mark.parametrize(("text", "words"), [
    ("fake:soon", "fake:SECONDS"),
    ("fake:-1", "finite number"),
    ("http://a/v1,/models/x", "mixes"),
    ("  ", "empty model spec"),
])
def test_a_bad_spec_names_file_line_and_field(tmp_path: Path, text: str, words: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"generate:\n  samples_per_leaf: 4\nteacher:\n  model: '{text}'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe)
    assert words in err.value.message
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line, err.value.location.field) == (str(recipe), 4,
                                                                                            "teacher.model")


def test_make_teacher_builds_the_fake_teacher_with_its_latency() -> None:
    from graftlm.teacher.fake import FakeTeacher

    teacher = make_teacher(TeacherConfig(model="fake:0.05"))
    assert isinstance(teacher, FakeTeacher) and teacher.latency_s == 0.05


def test_evaluated_models_run_with_the_eval_sections_device_not_the_teachers() -> None:
    from graftlm.evaluate.run import model_teacher_config

    recipe = recipe_from_dict({
        "teacher": {"model": "fake", "device": "cuda", "dtype": "bfloat16", "max_in_flight": 64, "api_key_env": "T_KEY"},
        "eval": {"device": "cpu", "dtype": "float32", "max_in_flight": 3, "api_key_env": "EVAL_KEY"},
    })
    cfg = model_teacher_config("default", recipe)
    assert (cfg.model, cfg.device, cfg.dtype, cfg.max_in_flight, cfg.api_key_env) == (
        "default", "cpu", "float32", 3, "EVAL_KEY")
    assert cfg.model.kind is ModelKind.LOCAL
