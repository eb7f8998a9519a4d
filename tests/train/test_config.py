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
    cfg_path.write_text(
        "lr: 3.0e-4\naugment: {shadow_p: 0.9}\nsources: [{path: ../data, weight: 2}]\ncache_dir: ../cache\n"
    )
    c = load_config(cfg_path, {"augment": {"rotate_p": 0.1}})
    assert c.lr == 3e-4 and c.augment.shadow_p == 0.9 and c.augment.rotate_p == 0.1
    assert c.cache_dir == str(tmp_path / "cache")
    assert c.augment.elastic_p == TrainConfig().augment.elastic_p
    assert c.sources[0].path == str(tmp_path / "data") and c.sources[0].weight == 2.0
    dump_config(c, tmp_path / "out" / "config.yaml")
    assert load_config(tmp_path / "out" / "config.yaml") == c


def test_config_files_layer_in_order_each_anchoring_its_own_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base, more = tmp_path / "a" / "base.yaml", tmp_path / "b" / "more.yaml"
    base.write_text(
        "lr: 1.0e-3\nepochs: 72\naugment: {shadow_p: 0.3, rotate_p: 0.5}\nsources: [{path: d1}, {path: d2}]\n"
    )
    more.write_text("lr: 3.0e-4\naugment: {shadow_p: 0.0}\nsources: [{path: d3}]\n")
    c = load_config([base, more], {"epochs": "12"})
    assert (c.lr, c.epochs) == (3e-4, 12)  # the later file, then --set
    assert (c.augment.shadow_p, c.augment.rotate_p) == (0.0, 0.5)  # nested keys merge one by one
    assert [s.path for s in c.sources] == [str(tmp_path / "b" / "d3")]  # a list is replaced, anchored at b/
    assert load_config([base]).sources[1].path == str(tmp_path / "a" / "d2")
    (tmp_path / "list.yaml").write_text("- lr: 1\n")
    with pytest.raises(UsageError, match="mapping"):
        load_config([base, tmp_path / "list.yaml"])


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


def test_cli_takes_several_config_files(tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    from edgeecg.train.cli import main  # noqa: PLC0415

    (tmp_path / "a.yaml").write_text("lr: 1.0e-3\nepochs: 72\n")
    (tmp_path / "b.yaml").write_text("lr: 3.0e-4\n")
    args = ["show-config", "--config", str(tmp_path / "a.yaml"), "--config", str(tmp_path / "b.yaml")]
    assert main([*args, "--set", "patience=2"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["lr"], shown["epochs"], shown["patience"]) == (3e-4, 72, 2)


def test_second_pass_layers_over_the_recipe_with_the_sets_the_script_makes():
    import re  # noqa: PLC0415

    first = load_config(ROOT / "train" / "configs" / "default.yaml")
    second = load_config(
        [ROOT / "train" / "configs" / "default.yaml", ROOT / "train" / "configs" / "fresh.yaml"]
    )
    assert second.lr < first.lr and second.epochs < first.epochs
    assert [s.path for s in second.sources[: len(first.sources)]] == [s.path for s in first.sources]
    assert (second.input_height, second.model_kwargs, second.ema_decay) == (
        first.input_height,
        first.model_kwargs,
        first.ema_decay,
    )
    fresh = {Path(s.path).name for s in second.sources[len(first.sources) :]}
    script = (ROOT / "scripts" / "train_sim.sh").read_text()
    letters = re.search(r"for x in ((?:[a-z]:\d+ ?)+); do", script).group(1).split()
    made = {f"s1_{style}_{x.split(':')[0]}" for x in letters for style in ("clean", "scan")}
    assert fresh == made


def test_stage_one_is_one_pass_from_random_init_over_every_page_at_the_first_rate():
    cfgs = ROOT / "train" / "configs"
    first = load_config(cfgs / "default.yaml")
    second = load_config([cfgs / "default.yaml", cfgs / "fresh.yaml"])
    one = load_config([cfgs / "default.yaml", cfgs / "fresh.yaml", cfgs / "single.yaml"])
    assert not one.init_checkpoint and one.lr == first.lr  # from random init, at the from-scratch rate
    assert 0 < one.epochs < first.epochs and one.amp == "on"
    assert [s.path for s in one.sources] == [s.path for s in second.sources]
    assert (one.input_height, one.model_kwargs, one.ema_decay) == (
        first.input_height,
        first.model_kwargs,
        first.ema_decay,
    )
    # the script runs that one pass and starts stage II from its best weights
    script = (ROOT / "scripts" / "train_sim.sh").read_text()
    assert script.count("edgeecg-train stage1") == 1 and "--config train/configs/single.yaml" in script
    assert "init_checkpoint" not in script
    assert '--init "$RUN/stage1/best.safetensors"' in script


def test_real_recipe_trains_on_the_ptbxl_sets_the_script_makes_and_validates_on_fold_9():
    import re  # noqa: PLC0415

    cfgs = ROOT / "train" / "configs"
    real = load_config([cfgs / "default.yaml", cfgs / "real.yaml"])
    script = (ROOT / "scripts" / "train_default.sh").read_text()
    # real_set DIR FOLDS PER-RECORD STYLE SEED
    sets = {
        m[0]: (m[1], m[2], m[3]) for m in re.findall(r"real_set data/(\w+) ([\d-]+) (\d+) (\w+) \d+", script)
    }
    assert {Path(s.path).name for s in real.sources} == {"r1_clean", "r1_scan"}
    assert all(sets[Path(s.path).name][0] == "1-8" for s in real.sources)  # training folds only
    assert sets[Path(real.val.path).name][0] == "9" and sets[Path(real.target.path).name] == (
        "1-8",
        "3",
        "photo",
    )
    assert sets["val9_photo"] == ("9", "1", "photo")  # the bundle's validation through the runtime
    # seeds differ between every set, but for stage II's photos: the verifier's photos, half weathered, half
    # in other layouts
    seeds = dict(re.findall(r"real_set data/(\w+) [\d-]+ \d+ \w+ (\d+)", script))
    assert seeds.pop("r2v_photo") == seeds["r2_photo"] and "--weathered 0.5 --varied-layout 0.5" in script
    # stage I's second pass: the same pages, half in other layouts
    assert seeds.pop("r1v_clean") == seeds["r1_clean"] and seeds.pop("r1v_scan") == seeds["r1_scan"]
    assert "r1v_clean" in script.split("stage I, varied layouts")[1]
    assert len(seeds) == len(set(seeds.values())) == 5
    # stage I goes on from the synthetic classifier; stage II from stage I; every step through the runtime chain
    assert 'init_checkpoint="$SIM/fold0.safetensors"' in script
    assert 'init_checkpoint="$RUN/stage1/best.safetensors"' in script  # the second pass goes on from stage I
    assert '--init "$RUN/varied/stage1/best.safetensors"' in script and "runtime_verifier" in script
    assert real.folds == 5 and real.lr < load_config(cfgs / "default.yaml").lr
