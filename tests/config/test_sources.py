"""Config sources: every error names where the bad value came from (recipe line or `--set KEY`), and values
YAML would quietly accept (duplicate keys, empty files, `.inf`, booleans for numbers) are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.cli import main
from graftlm.config import load_recipe, recipe_from_dict
from graftlm.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_set_value_names_the_set_option_not_a_recipe_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write(tmp_path, "teacher:\n  model: fake\ntrain:\n  epochs: 1\n")
    (tmp_path / "tax").mkdir()
    code = main(["run", str(tmp_path / "tax"), "--recipe", str(recipe), "--out", str(tmp_path / "out"),
                 "--dry-run", "--set", "train.epochs=many"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--set train.epochs" in err
    assert f"{recipe}:" not in err  # not blamed on the recipe's `epochs: 1` line
    assert "Traceback" not in err


def test_unknown_key_given_with_set_names_the_set_option(tmp_path: Path) -> None:
    recipe = write(tmp_path, "teacher:\n  model: fake\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe, {"teacher.modle": "x"})
    assert e.value.location is not None and e.value.location.file == "--set teacher.modle"
    assert "unknown key" in e.value.message


def test_an_error_in_the_recipe_itself_still_names_its_line(tmp_path: Path) -> None:
    recipe = write(tmp_path, "teacher:\n  model: fake\n  timeout_s: -1\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe, {"train.epochs": 2})
    loc = e.value.location
    assert loc is not None and loc.file == str(recipe) and loc.line == 3 and loc.field == "teacher.timeout_s"


def test_duplicate_keys_are_rejected_naming_both_lines(tmp_path: Path) -> None:
    recipe = write(tmp_path, "teacher:\n  model: fake\n  timeout_s: 10\ntrain:\n  epochs: 1\nteacher:\n  model: default\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe)
    assert "lines 1 and 6" in e.value.message and "'teacher'" in e.value.message
    nested = write(tmp_path, "train:\n  epochs: 1\n  epochs: 3\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(nested)
    assert "lines 2 and 3" in e.value.message and e.value.location and e.value.location.field == "train.epochs"


@pytest.mark.parametrize("text", ["", "# nothing here\n", "---\n"])
def test_empty_recipe_is_rejected(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_recipe(write(tmp_path, text))


@pytest.mark.parametrize(("text", "field", "line"), [
    ("teacher:\n  timeout_s: .inf\n", "teacher.timeout_s", 2),
    ("train:\n  learning_rate: .nan\n", "train.learning_rate", 2),
    ("teacher:\n  model: fake\n  max_in_flight: true\n", "teacher.max_in_flight", 3),
    ("teacher:\n  cpu_threads: false\n", "teacher.cpu_threads", 2),
])
def test_non_finite_numbers_and_booleans_for_numbers_are_rejected(tmp_path: Path, text: str, field: str,
                                                                    line: int) -> None:
    with pytest.raises(ConfigError) as e:
        load_recipe(write(tmp_path, text))
    assert e.value.location is not None and e.value.location.field == field and e.value.location.line == line


def test_booleans_stay_booleans_and_numbers_numbers() -> None:
    recipe = recipe_from_dict({"teacher": {"use_completions": True, "max_in_flight": 4, "timeout_s": 2}})
    assert recipe.teacher.use_completions is True and recipe.teacher.max_in_flight == 4
    assert recipe.teacher.timeout_s == 2.0
