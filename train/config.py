"""Training configuration: frozen dataclasses with documented defaults, overridden from YAML.

Every field carries its documentation in `metadata["help"]` (shown by `edgeecg-train show-config`).
The resolved config (defaults + YAML + command-line overrides) is written as `config.yaml` next to every
output, so a run can be repeated from its own directory.

Input size trade-off (default 256 x 512, height x width): a paper ECG page is landscape (~1.3:1 for the
grid, 2:1 for the 3x4 area plus rhythm strip), so a 2:1 input keeps the time axis at twice the vertical
resolution. At 512 px across ~10 s of trace, 1 px ~ 20 ms at the page scale, enough to tell a 120 ms QRS
from a 90 ms one and to see P waves; 0.5 mV of ST shift is ~3-4 px at 256 px height. Smaller inputs
(224 x 224) squash the 12 leads into a few pixels each; larger ones (512 x 1024) cost ~4x the compute
(113 ms vs ~30 ms per image for convnext_atto on these CPUs, docs/design.md section 7).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeecg import LABELS
from edgeecg.errors import UsageError

__all__ = [
    "DataConfig",
    "AugmentConfig",
    "TrainConfig",
    "load_config",
    "config_to_dict",
    "config_from_dict",
    "dump_config",
    "describe",
]


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - "help" reads best here
    if isinstance(default, (list, dict)):  # mutable: every instance gets its own copy
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class DataConfig:
    """One labelled image source (dataset dir, user CSV, or the on-the-fly synthesiser)."""

    path: str = _f("", "dataset dir (holding labels.csv) or a CSV file; ignored for kind=synth")
    kind: str = _f(
        "dir", "'dir' (a dataset dir or CSV) or 'synth' (render images on the fly with edgeecg.synth)"
    )
    weight: float = _f(1.0, "stage I mixing weight: share of each epoch's samples drawn from this source")
    image_column: str = _f("image", "CSV column with the image path (absolute, or relative to `root`)")
    label_columns: dict = _f(
        {k: k for k in LABELS}, "map from each edgeecg label (MI, AF, HYP, CD, STTC) to its CSV column"
    )
    findings_column: str = _f(
        "findings", "CSV column with the simulator's ';'-joined findings (for aux_findings); may be absent"
    )
    root: str = _f("", "folder image paths are relative to; default: the CSV's folder")
    geometry: str = _f("", "geometry.jsonl with paper boxes; default: <root>/geometry.jsonl when present")
    synth_style: str = _f("mix", "kind=synth: rendering style (clean, scan, photo, mix)")
    synth_n: int = _f(1000, "kind=synth: virtual size (distinct images) of the source")
    synth_seed: int = _f(0, "kind=synth: base seed; item i renders with seed synth_seed + i")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (Albumentations); applied after pre-processing at model input size."""

    enabled: bool = _f(True, "augment training images (never validation images)")
    rotate_limit: float = _f(5.0, "max rotation in degrees")
    rotate_p: float = _f(0.5, "probability of a rotation")
    elastic_p: float = _f(0.2, "probability of an elastic deformation (paper creases)")
    elastic_alpha: float = _f(20.0, "elastic displacement strength in pixels")
    elastic_sigma: float = _f(8.0, "elastic displacement smoothness in pixels")
    perspective_scale: float = _f(0.04, "max perspective corner shift as a fraction of the image")
    perspective_p: float = _f(0.3, "probability of a perspective distortion")
    brightness_contrast: float = _f(0.2, "max brightness and contrast change")
    brightness_contrast_p: float = _f(0.5, "probability of a brightness/contrast change")
    shadow_p: float = _f(0.3, "probability of a Catmull-Rom spline shadow")
    shadow_strength: tuple = _f((0.15, 0.5), "range of the shadow's darkening (0 none, 1 black)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. YAML keys are these field names (nested for sub-configs)."""

    model: str = _f("convnext_atto", "timm model name (any ConvNeXt: convnext_atto ... convnext_base)")
    model_kwargs: dict = _f({}, "extra timm constructor arguments (e.g. depths, dims for a tiny model)")
    input_height: int = _f(256, "model input height in pixels")
    input_width: int = _f(512, "model input width in pixels (landscape: see the module doc)")
    drop_rate: float = _f(0.2, "dropout before the classifier head")
    drop_path_rate: float = _f(0.0, "stochastic depth rate")
    lr: float = _f(1e-4, "AdamW peak learning rate")
    weight_decay: float = _f(1e-2, "AdamW weight decay")
    batch_size: int = _f(16, "images per optimiser micro-batch (per process under DDP)")
    grad_accum: int = _f(1, "micro-batches accumulated per optimiser step")
    grad_clip: float = _f(
        0.0,
        "clip the gradients' global norm to this before each optimiser step (0: off); the norms are logged",
    )
    epochs: int = _f(20, "maximum epochs")
    samples_per_epoch: int = _f(0, "training samples drawn per epoch; 0 = the size of the training data")
    warmup_epochs: float = _f(1.0, "linear warm-up length in epochs (fractions allowed)")
    num_cycles: float = _f(0.5, "cosine cycles after warm-up (0.5 = one half-cosine from lr down to 0)")
    patience: int = _f(5, "early stopping: epochs without a better validation macro AUROC")
    amp: str = _f(
        "auto",
        "mixed precision: auto (on with CUDA), on (also on a CPU: bfloat16, fast where the CPU has "
        "AVX512-BF16 or AMX), off",
    )
    channels_last: bool = _f(
        True, "NHWC memory format for model and batches (ConvNeXt trains ~1.5-2x faster on CPU)"
    )
    seed: int = _f(0, "seed for weights, data order, augmentation and folds")
    workers: int = _f(
        0, "DataLoader worker processes; the pre-processing cache builds in max(workers, threads) threads"
    )
    threads: int = _f(2, "torch CPU threads")
    device: str = _f("auto", "auto (cuda when available), cpu, cuda, cuda:N")
    init_checkpoint: str = _f(
        "", "weights to start from (safetensors or torch weights file); '' = random init"
    )
    sources: tuple = _f((), "stage I: list of DataConfig sources mixed by weight")
    val: DataConfig | None = _f(None, "stage I validation set; default: hold out val_fraction of dir sources")
    val_fraction: float = _f(0.1, "stage I: share of dir sources held out for validation when `val` is unset")
    target: DataConfig | None = _f(None, "stage II: the target dataset for k-fold cross-validation")
    folds: int = _f(5, "stage II: number of folds")
    preprocess: str = _f(
        "crop_clahe",
        "crop_clahe (paper_box crop, then CLAHE), warp_clahe (paper_quad warp, then CLAHE), edgeecg, none",
    )
    runtime_detector: str = _f(
        "", "preprocess=edgeecg: detector ONNX (its .json beside it) the runtime will use"
    )
    runtime_mode: str = _f("warp", "preprocess=edgeecg: the runtime mode (crop, warp, none)")
    runtime_corners: str = _f("classical", "preprocess=edgeecg, warp: corner source (keypoints, classical)")
    runtime_refine: bool = _f(True, "preprocess=edgeecg, warp: snap the corners onto the paper's edges")
    runtime_corner_model: str = _f(
        "",
        "preprocess=edgeecg, warp: corner model ONNX (its .json beside it) the runtime will use; '' = none",
    )
    runtime_verifier: str = _f(
        "",
        "preprocess=edgeecg, warp: verifier ONNX (its .json beside it): turns pages as the runtime does (upside "
        "down, a quarter-turn); never rejects a training image; '' = none",
    )
    aux_findings: float = _f(
        0.0,
        "weight of an auxiliary loss on the simulator's findings (edgeecg synth's `findings` column: MI "
        "territory and age, kind of conduction defect or hypertrophy, ST/T change and wall); 0 = off. The extra "
        "outputs only train: saved weights keep the five labels' head",
    )
    aux_balance: bool = _f(
        True, "aux_findings: weight each finding's positives by its inverse positive rate, as the labels' are"
    )
    lead_maps: float = _f(
        0.0,
        "weight of an auxiliary dense loss on lead maps (which lead lies where on the page and what the "
        "simulator put into it, from the ground-truth lead boxes and findings; needs warp_clahe); 0 = off. The "
        "map head only trains: saved weights are the plain model",
    )
    ema_decay: float = _f(
        0.0,
        "validate and save an exponential moving average of the weights with this decay per optimizer step "
        "(e.g. 0.998); 0 = off, the weights as trained",
    )
    lead_maps_from: int = _f(
        0,
        "first epoch with the lead-map loss: from random init on 2 CPU cores the map from epoch 0 kept the "
        "model on its starting plateau; later, it adds to what the labels teach",
    )
    clahe_clip: float = _f(2.0, "CLAHE clip limit")
    clahe_tile: int = _f(8, "CLAHE tile grid size")
    cache: bool = _f(
        False,
        "pre-process every image once into OUT/cache (uint8 memmap, n*H*W*3 bytes); epochs and folds reuse it",
    )
    cache_dir: str = _f(
        "",
        "folder for the cache instead of OUT/cache: runs over the same images can share it (a cache file's "
        "name carries its source and pre-processing, so a changed one builds a new file)",
    )
    augment: AugmentConfig = _f(AugmentConfig(), "augmentation settings")
    eval_batch_size: int = _f(32, "images per batch for validation and prediction")
    progress: bool = _f(True, "show tqdm progress bars")

    def __post_init__(self) -> None:
        if isinstance(self.amp, bool):  # YAML 1.1 reads a bare on / off as a boolean
            object.__setattr__(self, "amp", "on" if self.amp else "off")
        if self.amp not in ("auto", "on", "off"):
            raise UsageError(f"amp must be auto, on or off, not {self.amp!r}")
        if self.preprocess not in ("crop_clahe", "warp_clahe", "edgeecg", "none"):
            raise UsageError(
                f"preprocess must be crop_clahe, warp_clahe, edgeecg or none, not {self.preprocess!r}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("aux_findings", "lead_maps"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum", "epochs", "input_height", "input_width", "folds"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1")
        if self.input_height % 32 or self.input_width % 32:
            raise UsageError(
                "input_height and input_width must be multiples of 32 (ConvNeXt downsamples 32x)"
            )


def _build(cls: type, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        tp = hints[key]
        args = typing.get_args(tp)
        sub = next((a for a in (tp, *args) if dataclasses.is_dataclass(a)), None)
        if key == "sources":
            value = tuple(_build(DataConfig, v, f"{where}.sources[{i}]") for i, v in enumerate(value or ()))
        elif sub is not None and value is not None:
            value = _build(sub, value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        elif tp in (int, float) and not isinstance(value, bool):
            # YAML 1.1 reads "4e-4" (no dot) as a string: coerce, or say which key is wrong.
            try:
                value = tp(value) if tp is float or not isinstance(value, float) else value
            except (TypeError, ValueError):
                raise UsageError(f"{where}.{key}: expected a number, got {value!r}") from None
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: dict) -> TrainConfig:
    """Build a TrainConfig from a (YAML-style) dict; unknown keys raise UsageError."""
    return _build(TrainConfig, data or {}, "config")


def config_to_dict(cfg: Any) -> Any:
    """Plain dict/list/scalar form of a config (YAML- and JSON-serialisable)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: config_to_dict(v) for k, v in cfg.items()}
    return cfg


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(
    path: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None, overrides: dict | None = None
) -> TrainConfig:
    """Defaults, then the YAML file(s) at `path` in order, then `overrides` (nested dicts merge key by key,
    lists are replaced).

    Several files layer: a later one changes only the keys it names (`--config default.yaml --config
    fresh.yaml`). Relative dataset paths in a YAML file are taken relative to that file's folder.
    """
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    data: dict = {}
    for one in paths:
        p = Path(one)
        if not p.is_file():
            raise UsageError(f"config file not found: {p}")
        try:
            layer = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise UsageError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(layer, dict):
            raise UsageError(f"{p}: a config file holds a mapping of keys, not {type(layer).__name__}")
        data = _merge(data, _anchor_paths(layer, p.parent.resolve()))
    data = _merge(data, overrides or {})
    return config_from_dict(data)


def _anchor_paths(data: dict, base: Path) -> dict:
    def fix(d: Any) -> Any:
        if not isinstance(d, dict):
            return d
        d = dict(d)
        for key in ("path", "root", "geometry"):
            if d.get(key) and not Path(d[key]).is_absolute():
                d[key] = os.path.normpath(base / d[key])
        return d

    data = dict(data)
    if isinstance(data.get("sources"), list):
        data["sources"] = [fix(s) for s in data["sources"]]
    for key in ("val", "target"):
        if data.get(key):
            data[key] = fix(data[key])
    for key in ("init_checkpoint", "cache_dir"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = os.path.normpath(base / data[key])
    return data


def dump_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)


def describe(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """One line per field: `name (default): help`, nested configs flattened with dots."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            lines.append(f"{prefix}{f.name}: {f.metadata.get('help', '')}")
            lines += describe(type(default), prefix + f.name + ".")
        else:
            lines.append(f"{prefix}{f.name} ({default!r}): {f.metadata.get('help', '')}")
    if cls is TrainConfig and not prefix:
        lines.append("sources[] / val / target: DataConfig, with these keys")
        lines += describe(DataConfig, "  ")
    return lines
