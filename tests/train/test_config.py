"""Config: defaults, YAML overrides, path anchoring, round trip, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeecg.errors import UsageError
from edgeecg.train.config import TrainConfig, describe, dump_config, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_method():
    c = TrainConfig()
    assert (c.lr, c.weight_decay, c.patience, c.folds) == (1e-4, 1e-2, 5, 5)
    assert (c.input_height, c.input_width) == (256, 512)
    assert all(": " in line for line in describe())  # every key documented


def test_yaml_overrides_nested_and_paths_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg_path = tmp_path / "sub" / "c.yaml"
    cfg_path.write_text("lr: 3.0e-4\naugment: {shadow_p: 0.9}\nsources: [{path: ../data, weight: 2}]\n")
    c = load_config(cfg_path, {"augment": {"rotate_p": 0.1}})
    assert c.lr == 3e-4 and c.augment.shadow_p == 0.9 and c.augment.rotate_p == 0.1
    assert c.augment.elastic_p == TrainConfig().augment.elastic_p
    assert c.sources[0].path == str(tmp_path / "data") and c.sources[0].weight == 2.0
    dump_config(c, tmp_path / "out" / "config.yaml")
    assert load_config(tmp_path / "out" / "config.yaml") == c


def test_bad_values_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown key"):
        load_config(None, {"augment": {"nope": 1}})
    with pytest.raises(UsageError, match="multiples of 32"):
        load_config(None, {"input_height": 100})
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_shipped_recipe_loads():
    c = load_config(ROOT / "train" / "configs" / "default.yaml")
    assert c.model == "convnext_atto" and len(c.sources) == 2 and c.target is not None and c.folds == 5


def test_cli_set_paths_are_relative_to_the_current_directory(tmp_path, monkeypatch):
    from edgeecg.train.cli import _absolute, _overrides

    monkeypatch.chdir(tmp_path)
    over = _absolute(
        _overrides(["sources=[{path: a, weight: 2.0}, {path: b}]", "target={path: c}", "val={path: d}"])
    )
    cfg = load_config(None, over)
    assert [s.path for s in cfg.sources] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert cfg.sources[0].weight == 2.0
    assert cfg.target.path == str(tmp_path / "c") and cfg.val.path == str(tmp_path / "d")


def test_amp_on_and_off_survive_yaml_booleans(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("amp: on\n")  # YAML 1.1 reads this as True
    assert load_config(cfg_path).amp == "on"
    assert load_config(None, {"amp": False}).amp == "off"
    assert load_config(None, {"amp": "auto"}).amp == "auto"
