"""Training's cross-field checks are validators of the config: a bad recipe fails when it loads, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.config import load_recipe, recipe_from_dict
from graftlm.errors import ConfigError


@pytest.mark.parametrize(("train", "field", "words"), [
    ({"max_seq_len": 2048, "max_tokens_per_row": 1024}, "train.max_seq_len", "max_tokens_per_row"),
    ({"schedule": "cosine", "learning_rate": 1e-5, "min_lr": 1e-4}, "train.min_lr", "above learning_rate"),
    ({"schedule": "cosine", "min_lr": 1e-5, "phase_overrides": {"skills": {"learning_rate": 1e-6}}},
     "train.phase_overrides", "skills"),
    ({"attention": "flex_attention", "device": "cpu"}, "train.attention", "CUDA"),
])
def test_cross_field_checks_name_the_field(train: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        recipe_from_dict({"train": train}, source="r.yaml")
    assert words in err.value.message
    assert err.value.location is not None and err.value.location.field == field


def test_settings_that_fit_pass() -> None:
    cfg = recipe_from_dict({"train": {"schedule": "cosine", "learning_rate": 1e-4, "min_lr": 1e-5,
                                      "max_seq_len": 1024, "max_tokens_per_row": 1024, "attention": "sdpa",
                                      "device": "cpu", "phase_overrides": {"skills": {"learning_rate": 2e-5}}}}).train
    assert cfg.for_phase("skills").learning_rate == 2e-5 and cfg.min_lr == 1e-5


def test_checkpoint_selection_has_a_choice_only_with_several_checkpoints():
    """`graft run` builds a checkpoint scorer only when some phase keeps more than one checkpoint."""
    from graftlm.config.train import TrainConfig

    assert TrainConfig(epochs=3).keeps_several_checkpoints()  # one per epoch end
    assert not TrainConfig(epochs=3, save_epoch_end=False).keeps_several_checkpoints()  # only the last
    assert not TrainConfig(epochs=1).keeps_several_checkpoints()
    assert TrainConfig(epochs=1, checkpoint_every_samples=8).keeps_several_checkpoints()
    assert TrainConfig(epochs=1, phase_overrides={"skills": {"epochs": 2}}).keeps_several_checkpoints()
    demo = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "cpu-demo.yaml")
    assert not demo.train.keeps_several_checkpoints() and demo.generate.eval_selection_share == 0
