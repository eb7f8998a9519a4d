"""Paper detector training (ultralytics YOLO pose, 4 corner keypoints), ONNX export and held-out evaluation.

ultralytics (AGPL-3.0) is used here, in training code only; the runtime decodes the exported ONNX itself
(`edgeecg.preprocess.detector`). Everything runs offline: the model is built from a `.yaml` (random
init, no `.pt` download), AMP checks and plots (which fetch a font) are off, and YOLO_OFFLINE /
YOLO_AUTOINSTALL / YOLO_CONFIG_DIR are set before ultralytics is imported.

Usage (see scripts/train_detector.sh for the full, timed sequence)::

    python -m edgeecg.train.detector train --data build/det/train --val build/det/val --out runs/detector
    python -m edgeecg.train.detector export --weights runs/detector/weights/best.pt --out runs/detector/detector.onnx
    python -m edgeecg.train.detector calibrate --data build/det/tune --model runs/detector/detector.onnx
    python -m edgeecg.train.detector evaluate --data build/det/test --model runs/detector/detector.onnx

`edgeecg-train detector ...` should call `main_detector(argv)` with the arguments after "detector".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg._lazy import require
from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import EdgeECGError, InputError, UsageError
from edgeecg.export.detector import LETTERBOXES, describe_onnx, export_detector
from edgeecg.preprocess import CornerModel, PreprocessConfig, Preprocessor, Verifier
from edgeecg.preprocess.corners import quad_diagonal
from edgeecg.preprocess.detector import Detector, box_iou
from edgeecg.sidecar import read_sidecar
from edgeecg.synth.dataset import parse_size

# Imported inside functions, so they load only when used: optional or heavy libraries (torch, tqdm,
# ultralytics, yaml); modules that import this one back (edgeecg.train.verifier).

log = logging.getLogger(__name__)

#: Held-out targets (issue 4): fraction of images that must meet each criterion.
TARGETS = {"iou_ge_0.90": 0.98, "corner_err_le_1.5pct": 0.95, "negatives_rejected": 0.95}
FLIP_IDX = [1, 0, 3, 2]  # a horizontal flip swaps left and right corners


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Detector training settings (dumped as detector_config.json next to the weights).

    Attributes:
        data: synth dataset directories to train on (`edgeecg synth` output: images/, labels/).
        val: synth dataset directory to validate on (a different seed).
        out: run directory (weights/best.pt, weights/last.pt, results.csv).
        model: ultralytics model yaml; the scale letter picks the size (yolov8n-pose.yaml, yolo11n-pose.yaml).
        imgsz: square training and export size; 320 keeps the runtime detector ~10 ms on 2 CPU cores.
        epochs: training epochs.
        batch: batch size.
        workers: dataloader workers.
        seed: random seed (ultralytics is then deterministic on CPU).
        lr0: initial learning rate.
        patience: early-stopping patience in epochs.
        mosaic: mosaic augmentation probability (off: a mosaic cuts the sheet's corners out of the frame).
        fliplr: horizontal flip probability (corners are swapped with FLIP_IDX).
        degrees: random rotation range in degrees.
        close_mosaic: epochs at the end without mosaic.
        device: torch device string.
        init: weights to start from (a best.pt of an earlier run: fine-tuning), or "" for random init.
        warmup_epochs: learning-rate warm-up epochs (ultralytics' default 3 suits random init only).
        width: channel multiple replacing the yaml's own (0.25 for yolov8n); e.g. 0.125 halves every layer's
            width, ~3-4x fewer FLOPs, for a faster detector and a shorter recipe. None keeps the yaml's.
        threads: torch threads while training on the CPU; 0 keeps ultralytics' choice (one fewer than the
            cores: 1 on a 2-core machine). 2 there trains ~1.2x faster; float sums then run in another
            order, so the weights differ in their last bits from a 1-thread run.
    """

    data: tuple[str, ...] = ()
    val: str = ""
    out: str = "runs/detector"
    model: str = "yolov8n-pose.yaml"
    imgsz: int = 320
    epochs: int = 12
    batch: int = 16
    workers: int = 2
    seed: int = 0
    lr0: float = 0.01
    patience: int = 5
    mosaic: float = 0.0
    fliplr: float = 0.5
    degrees: float = 5.0
    close_mosaic: int = 0
    device: str = "cpu"
    init: str = ""
    warmup_epochs: float = 3.0
    width: float | None = None
    threads: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def offline_env(build_dir: str | Path = "build") -> None:
    """Make ultralytics work offline and keep its settings file in the build dir (call before importing it)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(build_dir).resolve() / "yolo-config"))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)


def _ultralytics():
    offline_env()
    ul = require("ultralytics")
    from ultralytics.utils import SETTINGS

    # no telemetry or experiment-tracker callbacks (keys differ between ultralytics versions)
    off = ("sync", "clearml", "comet", "dvc", "hub", "mlflow", "raytune", "tensorboard", "wandb")
    SETTINGS.update({k: False for k in off if k in SETTINGS and SETTINGS[k] is not False})
    return ul


def _check_dataset(d: str | Path) -> Path:
    d = Path(d)
    if not (d / "images").is_dir() or not (d / "labels").is_dir():
        raise UsageError(f"{d} is not an `edgeecg synth` dataset (needs images/ and labels/)")
    return d.resolve()


def write_data_yaml(train_dirs: list[str | Path], val_dir: str | Path, path: str | Path) -> Path:
    """An ultralytics dataset yaml over synth dataset dirs (labels/ sits beside images/, as YOLO expects)."""
    train = [str(_check_dataset(d) / "images") for d in train_dirs]
    val = str(_check_dataset(val_dir) / "images")
    text = (
        "train:\n"
        + "".join(f"  - {t}\n" for t in train)
        + f"val: {val}\nnames:\n  0: ecg\nkpt_shape: [4, 3]\nflip_idx: {FLIP_IDX}\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def scaled_model_yaml(base: str, width: float, out_dir: str | Path) -> Path:
    """`base` (an ultralytics model yaml name, e.g. yolov8n-pose.yaml) with its channel multiple set to `width`,
    written into `out_dir` (read from the installed ultralytics, so nothing of theirs lives in this repo)."""
    import yaml

    _ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    if not 0 < width <= 1.5:
        raise UsageError(f"--width must be in (0, 1.5], got {width}")
    try:
        cfg = yaml_model_load(base)
    except Exception as err:  # ultralytics raises FileNotFoundError or its own types
        raise UsageError(f"no ultralytics model yaml {base!r}: {str(err).splitlines()[0]}") from None
    scale = cfg.get("scale") or next(iter(cfg.get("scales") or {"n": None}))
    depth, _, max_channels = (cfg.get("scales") or {}).get(scale, [0.33, 0.25, 1024])
    cfg = {k: v for k, v in cfg.items() if k not in ("scale", "yaml_file", "ch")}
    cfg.update(nc=1, kpt_shape=[4, 3])  # one class (the sheet), its four corners
    # one scale only: ultralytics then takes it whatever the file is called
    cfg["scales"] = {"w": [depth, float(width), max_channels]}
    path = Path(out_dir) / f"{Path(base).stem.replace(f'yolov8{scale}', 'yolov8w')}-w{width:g}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def train(cfg: DetectorTrainConfig) -> Path:
    """Train the pose detector from its yaml (random init) and return the path of best.pt."""
    if not cfg.data or not cfg.val:
        raise UsageError("detector training needs --data (one or more synth dirs) and --val (a synth dir)")
    ul = _ultralytics()
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_yaml = write_data_yaml(list(cfg.data), cfg.val, out / "data.yaml")
    (out / "detector_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n", encoding="utf-8")
    if cfg.init and not Path(cfg.init).is_file():
        raise UsageError(f"--init {cfg.init}: no such weights file")
    if cfg.threads < 0:
        raise UsageError(f"--threads must be >= 0, got {cfg.threads}")
    # our own earlier run's checkpoint (ultralytics' format); the model yaml is then the one saved in it
    arch = cfg.model
    if cfg.width is not None and not cfg.init:
        arch = str(scaled_model_yaml(cfg.model, cfg.width, out))
    model = ul.YOLO(cfg.init or arch, task="pose")
    if cfg.threads:
        # ultralytics sets torch to cores - 1 threads when it picks the CPU; this runs after that
        def _threads(trainer: Any) -> None:
            import torch

            torch.set_num_threads(cfg.threads)
            log.info("detector training with %d torch threads", torch.get_num_threads())

        model.add_callback("on_train_start", _threads)
    args = dict(
        data=str(data_yaml),
        epochs=cfg.epochs,
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        workers=cfg.workers,
        device=cfg.device,
        seed=cfg.seed,
        deterministic=True,
        lr0=cfg.lr0,
        warmup_epochs=cfg.warmup_epochs,
        patience=cfg.patience,
        mosaic=cfg.mosaic,
        close_mosaic=cfg.close_mosaic,
        fliplr=cfg.fliplr,
        degrees=cfg.degrees,
        pretrained=bool(cfg.init),  # False would drop the --init weights
        amp=False,  # the AMP check downloads yolo11n.pt
        plots=False,  # plotting downloads a font
        project=str(out.parent),
        name=out.name,
        exist_ok=True,
        verbose=False,
        **cfg.extra,
    )
    t0 = time.perf_counter()
    model.train(**args)
    best = out / "weights" / "best.pt"
    if not best.is_file():
        best = out / "weights" / "last.pt"
    if not best.is_file():
        raise EdgeECGError(f"ultralytics finished without writing weights under {out / 'weights'}")
    log.info("detector trained in %.0f s: %s", time.perf_counter() - t0, best)
    return best


def export(
    weights: str | Path, out: str | Path, imgsz: int = 320, letterbox: str = "square"
) -> dict[str, Any]:
    """Export best.pt to ONNX at `out` (opset 17; a fixed square input, or with `letterbox="rect"` a dynamic
    height and width up to `imgsz`) and write `out`.json with the manifest fields.

    The bundle itself is assembled by `edgeecg-export --detector <best.pt or .onnx> --detector-imgsz N`.
    """
    _ultralytics()

    fields = export_detector(weights, out, imgsz, letterbox)
    Path(out).with_suffix(".json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    return fields


# -- synth scene sets -------------------------------------------------------------------------------
def scene_rows(data: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of an `edgeecg synth` dir's geometry.jsonl (null paper_quad = a no-ECG scene), first `limit`."""
    geo = Path(data) / "geometry.jsonl"
    if not geo.is_file():
        raise UsageError(f"{data} has no geometry.jsonl: not an `edgeecg synth` dataset")
    rows = [json.loads(line) for line in geo.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def scene_image(data: str | Path, row: dict[str, Any]) -> np.ndarray:
    """The BGR image of one geometry.jsonl row, or InputError."""

    path = Path(data) / row["image"]
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read {path}")
    return img


# -- evaluation -------------------------------------------------------------------------------------
def corner_error(
    pred: np.ndarray | None, quad: np.ndarray, shape: tuple[int, int], all_four: bool = False
) -> float:
    """Mean distance of the in-frame true corners to the predicted ones, as a fraction of the paper diagonal.

    Corners outside the frame are not scored (they are labelled invisible), unless `all_four`: the warp
    uses all four, and a sheet running off the frame is flattened wrong when its hidden corners are
    misplaced. inf without a prediction.
    """
    if pred is None:
        return float("inf")
    h, w = shape
    # a corner exactly on the frame's edge (a full-frame page) is visible and scored
    inside = (quad[:, 0] >= 0) & (quad[:, 0] <= w) & (quad[:, 1] >= 0) & (quad[:, 1] <= h)
    inside |= all_four
    if not inside.any():
        return 0.0

    return float(np.linalg.norm(pred[inside] - quad[inside], axis=1).mean() / quad_diagonal(quad))


def evaluate(
    data: str | Path,
    model: str | Path,
    conf_threshold: float = 0.25,
    input_size: tuple[int, int] | None = None,
    limit: int | None = None,
    corners: str = "keypoints",
    refine: bool = True,
    verifier: str | Path | None = None,
    input_size_cls: tuple[int, int] = (96, 192),
    corner_model: str | Path | None = None,
) -> dict[str, Any]:
    """Score the paper finder on a synth dataset dir against the issue's three held-out targets.

    The corners scored are those the runtime's warp would use: `corners` as the source, refined onto the
    paper's edges with `refine` (the keypoints alone: corners keypoints, refine off).

    Args:
        data: `edgeecg synth` output (geometry.jsonl has the true quads; null quad = no-ECG negative).
        model: detector ONNX.
        conf_threshold: a negative counts as rejected when the best score is below this.
        input_size: detector input (h, w); read from the model by default.
        limit: score only the first N images.
        corners: the warp's corner source (keypoints, classical).
        refine: snap the corners onto the paper's edges, as `PreprocessConfig.refine`.
        verifier: a verifier ONNX (verifier.json beside it) run on each page, as a bundle with one does.
        input_size_cls: the classifier input the pages are made at (what the verifier sees).
        corner_model: a corner model ONNX (corners.json beside it) placing the corners where refinement
            did not find all four edges, as a bundle with one does.

    Returns:
        Counts, the three fractions, whether each meets its target, and the corner fraction per style.
    """
    from tqdm import tqdm

    rows = scene_rows(data, limit)
    cfg = PreprocessConfig(mode="warp", corners=corners, refine=refine, conf_threshold=conf_threshold)
    ious, errs, errs4, styles, rejected = [], [], [], [], []
    with contextlib.ExitStack() as stack:
        pre = _chain(stack, cfg, model, input_size, verifier, input_size_cls, corner_model)
        for row in tqdm(rows, desc="evaluate", unit="img", disable=None):
            img = scene_image(data, row)
            prep = pre(img)
            if row.get("paper_quad") is None:
                rejected.append(prep.rejected is not None)
                continue
            h, w = img.shape[:2]
            quad = np.asarray(row["paper_quad"], np.float32)
            gt = np.clip(np.r_[quad.min(0), quad.max(0)], 0, [w, h, w, h])  # the visible box, as labelled
            found = prep.rejected is None
            ious.append(float(box_iou(prep.page_box(h, w)[None], gt[None])[0, 0]) if found else 0.0)
            errs.append(corner_error(prep.corners if found else None, quad, (h, w)))
            errs4.append(corner_error(prep.corners if found else None, quad, (h, w), all_four=True))
            styles.append(row.get("style", "?"))
    ious_a, errs_a, styles_a = np.asarray(ious), np.asarray(errs), np.asarray(styles)
    errs4_a = np.asarray(errs4)
    res: dict[str, Any] = {
        "images": len(rows),
        "ecg_images": len(ious),
        "negatives": len(rejected),
        "corners": corners,
        "refine": refine,
        "verifier": str(verifier) if verifier else None,
        "corner_model": str(corner_model) if corner_model else None,
        "page_size": list(input_size_cls),
        "iou_ge_0.90": float((ious_a >= 0.9).mean()) if len(ious) else float("nan"),
        "corner_err_le_1.5pct": float((errs_a <= 0.015).mean()) if len(errs) else float("nan"),
        "negatives_rejected": float(np.mean(rejected)) if rejected else float("nan"),
        "median_iou": float(np.median(ious_a)) if len(ious) else float("nan"),
        "median_corner_err": float(np.median(errs_a)) if len(errs) else float("nan"),
        "corner_err_le_1.5pct_by_style": {
            str(st): float((errs_a[styles_a == st] <= 0.015).mean()) for st in sorted(set(styles))
        },
        # what the warp needs: the hidden corners of a sheet running off the frame too (no target)
        "all_four_corners_err_le_1.5pct": float((errs4_a <= 0.015).mean()) if len(errs4) else float("nan"),
        "all_four_corners_err_le_1.5pct_by_style": {
            str(st): float((errs4_a[styles_a == st] <= 0.015).mean()) for st in sorted(set(styles))
        },
    }
    res["meets"] = {k: bool(res[k] >= v) for k, v in TARGETS.items()}
    return res


#: The lowest detector threshold a calibration with the verifier may choose: below it the best box of a
#: picture without paper is noise.
DETECTOR_FLOOR = 0.05


def _chain(
    stack: contextlib.ExitStack,
    cfg: Any,
    model: str | Path,
    input_size: tuple[int, int] | None,
    verifier: str | Path | None,
    input_size_cls: tuple[int, int],
    corner_model: str | Path | None,
) -> Any:
    """The runtime's Preprocessor over these ONNX files (each with the .json its trainer wrote beside it),
    its sessions closed with `stack`."""

    def with_sidecar(path: str | Path, option: str, cls: Any, name: str) -> Any:
        """`cls` over the ONNX at `path`, its manifest fields from the .json its trainer wrote beside it."""
        meta = read_sidecar(
            path, error=UsageError, missing=f"{option} {path}: no {Path(path).stem}.json beside it"
        )
        return cls.from_manifest(stack.enter_context(OnnxRuntimeRunner(path, name=name)), meta)

    loaded_verifier = (
        with_sidecar(verifier, "--verifier", Verifier, "verifier") if verifier is not None else None
    )
    loaded_corner_model = None
    if corner_model is not None:
        loaded_corner_model = with_sidecar(corner_model, "--corner-model", CornerModel, "corner-model")
    det = open_detector(stack.enter_context(OnnxRuntimeRunner(model)), model, input_size)
    return Preprocessor(cfg, det, input_size_cls, verifier=loaded_verifier, corner_model=loaded_corner_model)


def _sidecar(model: str | Path) -> dict[str, Any]:
    """The `.json` beside a detector ONNX (written by `export`, updated by `calibrate`), or {}."""
    return read_sidecar(model, required=False, error=UsageError)


def open_detector(runner: Any, model: str | Path, input_size: tuple[int, int] | None = None) -> Any:
    """A runtime `Detector` for the ONNX `model` behind `runner`, with the fields its metadata records (input
    size, strides, keypoints: what the exporter would write into a manifest); `input_size` overrides."""

    section = describe_onnx(model)
    section["letterbox"] = _sidecar(model).get("letterbox", "square")  # what `export` exported it for
    if input_size:
        section["input_size"] = list(input_size)
    return Detector.from_manifest(runner, section)


def _sidecar_threshold(model: str | Path, default: float = 0.25) -> float:
    """The conf_threshold in the `.json` beside a detector ONNX (see `calibrate`), else `default`."""
    return float(_sidecar(model).get("conf_threshold", default))


def calibrate(
    data: str | Path,
    model: str | Path,
    max_ecg_rejected: float = 0.01,
    limit: int | None = None,
    verifier: str | Path | None = None,
    min_negatives_rejected: float = 0.95,
    page_size: tuple[int, int] = (96, 192),
    corner_model: str | Path | None = None,
) -> dict[str, Any]:
    """Choose the "no ECG found" threshold on a tuning set (a seed used neither for training nor testing).

    Alone, the detector's threshold lets at most `max_ecg_rejected` of the set's ECG images fall below it (a
    missed ECG costs more than a desk photo let through); within that, it rejects as many negatives as it
    can, with a margin (`edgeecg.train.verifier.choose_threshold`).

    With `verifier`, the verifier that stands behind the detector in a bundle, the pair is calibrated: the
    check turns away what is not an ECG, so the detector's threshold drops to the lowest (no lower than
    DETECTOR_FLOOR) at which the chain, pages made as a bundle makes them (warp, classical corners,
    refinement, `corner_model`, `page_size`), still rejects `min_negatives_rejected` of the negatives. The
    detector's scores on synthetic ECGs say little about real photos, which it scores far lower: a low
    threshold keeps those for the check to judge.

    The result is written into the `.json` beside the model, from which the bundle's manifest takes it.
    """
    from tqdm import tqdm

    model = Path(model)
    rows = scene_rows(data, limit)
    if not 0 <= max_ecg_rejected < 0.5:
        raise UsageError(f"--max-ecg-rejected must be in [0, 0.5), got {max_ecg_rejected}")
    if not 0 < min_negatives_rejected <= 1:
        raise UsageError(f"--min-negatives-rejected must be in (0, 1], got {min_negatives_rejected}")
    pos, neg, neg_checked = [], [], []  # detector scores; for negatives also whether the check rejects them
    with contextlib.ExitStack() as stack:
        if verifier is None:
            det = open_detector(stack.enter_context(OnnxRuntimeRunner(model)), model)
        else:
            cfg = PreprocessConfig(mode="warp", corners="classical", refine=True, conf_threshold=0.0)
            pre = _chain(stack, cfg, model, None, verifier, page_size, corner_model)
            det = pre.detector
        for row in tqdm(rows, desc="calibrate", unit="img", disable=None):
            img = scene_image(data, row)
            if row.get("paper_quad") is not None:
                d = det.detect(img, conf_threshold=0.0)
                pos.append(d.confidence if d is not None else 0.0)
            elif verifier is None:
                d = det.detect(img, conf_threshold=0.0)
                neg.append(d.confidence if d is not None else 0.0)
            else:
                prep = pre(img)  # threshold 0: only the check (or no box at all) rejects
                neg.append(prep.confidence)
                neg_checked.append(prep.rejected is not None)
    if not pos or not neg:
        raise UsageError(f"{data} needs both ECG images and no-ECG negatives (synth --negatives)")
    from edgeecg.train.verifier import choose_threshold

    pos_a, neg_a = np.asarray(pos), np.asarray(neg)
    cal = choose_threshold(pos_a, neg_a, max_ecg_rejected, lo=0.05, hi=0.95)
    res = {
        "conf_threshold": round(cal["threshold"], 4),
        "ecg_images": len(pos),
        "negatives": len(neg),
        "ecg_rejected": cal["ecg_rejected"],
        "negatives_rejected": cal["negatives_rejected"],
        "data": str(data),
    }
    if verifier is not None:
        checked = np.asarray(neg_checked)
        # the chain's rejections only grow with the threshold: take the lowest that is enough
        for t in np.unique(
            np.r_[DETECTOR_FLOOR, neg_a[neg_a > DETECTOR_FLOOR] + 1e-4, res["conf_threshold"]]
        ):
            chain = float(np.mean(checked | (neg_a < t)))
            if chain >= min_negatives_rejected or t >= res["conf_threshold"]:
                break
        t = float(min(t, res["conf_threshold"]))
        res.update(
            conf_threshold=round(t, 4),
            detector_alone_threshold=res["conf_threshold"],
            ecg_rejected=float(np.mean(pos_a < t)),
            negatives_rejected=float(np.mean(neg_a < t)),
            chain_negatives_rejected=chain,
            verifier=str(verifier),
            corner_model=str(corner_model) if corner_model else None,
            page_size=list(page_size),
        )
    fields = _sidecar(model)
    fields["conf_threshold"] = res["conf_threshold"]
    fields["conf_threshold_calibration"] = {k: v for k, v in res.items() if k != "conf_threshold"}
    model.with_suffix(".json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    return res


# -- command line -------------------------------------------------------------------------------------
def _page_size(text: str) -> tuple[int, int]:
    h, w = parse_size(text, "--page-size", "128x256")
    if h < 8 or w < 8:
        raise UsageError(f"--page-size {text}: too small")
    return h, w


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeecg-train detector", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = DetectorTrainConfig()
    t = sub.add_parser("train", help="train the YOLO pose detector on synth scenes")
    t.add_argument("--data", nargs="+", required=True, help="synth dataset dirs to train on")
    t.add_argument("--val", required=True, help="synth dataset dir to validate on (another seed)")
    t.add_argument("--out", default=d.out, help=f"run directory (default {d.out})")
    t.add_argument("--model", default=d.model, help=f"ultralytics model yaml (default {d.model})")
    t.add_argument("--imgsz", type=int, default=d.imgsz, help=f"input size (default {d.imgsz})")
    t.add_argument(
        "--width",
        type=float,
        help="channel multiple in place of the yaml's (yolov8n: 0.25; 0.125 is ~3x cheaper); random init only",
    )
    t.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    t.add_argument("--batch", type=int, default=d.batch, help=f"batch size (default {d.batch})")
    t.add_argument("--workers", type=int, default=d.workers, help=f"dataloader workers (default {d.workers})")
    t.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help="torch threads on the CPU (default 0: ultralytics' choice, cores - 1)",
    )
    t.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    t.add_argument(
        "--init", default=d.init, help="fine-tune from this best.pt (an earlier run) instead of random init"
    )
    t.add_argument("--lr0", type=float, default=d.lr0, help=f"initial learning rate (default {d.lr0})")
    t.add_argument(
        "--warmup-epochs",
        type=float,
        default=d.warmup_epochs,
        help=f"warm-up epochs (default {d.warmup_epochs})",
    )
    t.add_argument("--export", action="store_true", help="export best.pt to OUT/detector.onnx afterwards")
    e = sub.add_parser("export", help="export a trained best.pt to ONNX (+ manifest fields as .json)")
    e.add_argument("--weights", required=True, help="best.pt from `train`")
    e.add_argument("--out", required=True, help="output .onnx")
    e.add_argument("--imgsz", type=int, default=d.imgsz, help=f"input size (default {d.imgsz})")
    e.add_argument(
        "--letterbox",
        choices=LETTERBOXES,
        default="square",
        help="square: a fixed input, as trained (default); rect: dynamic height and width, padded to the stride",
    )
    v = sub.add_parser(
        "evaluate",
        help="held-out box IoU, corner error and negative rejection (as the runtime's warp sees them)",
    )
    v.add_argument(
        "--data", required=True, help="synth dataset dir (new seed, >= 500 images, with negatives)"
    )
    v.add_argument("--model", required=True, help="detector .onnx")
    v.add_argument(
        "--conf",
        type=float,
        help="rejection threshold (default: the calibrated one in MODEL.json, else 0.25)",
    )
    v.add_argument("--limit", type=int, help="score only the first N images")
    v.add_argument(
        "--corners",
        choices=("keypoints", "classical"),
        default="keypoints",
        help="the warp's corner source (default keypoints)",
    )
    v.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="snap the corners onto the paper's edges, as the runtime does by default (--no-refine: the raw source)",
    )
    v.add_argument("--verifier", help="also run this verifier .onnx on every page, as a bundle does")
    v.add_argument(
        "--page-size",
        default="96x192",
        help="HxW the pages are made at: the bundle's classifier input, which the verifier sees (default 96x192)",
    )
    v.add_argument(
        "--corner-model", help="also place corners with this corner model (.onnx), as a bundle with one does"
    )
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    c = sub.add_parser("calibrate", help="choose the no-ECG threshold on a tuning set (writes MODEL.json)")
    c.add_argument("--data", required=True, help="synth dataset dir with negatives, a seed kept for tuning")
    c.add_argument("--model", required=True, help="detector .onnx")
    c.add_argument(
        "--max-ecg-rejected",
        type=float,
        default=0.01,
        help="highest share of ECG images the threshold may reject (default 0.01)",
    )
    c.add_argument("--limit", type=int, help="use only the first N images")
    c.add_argument(
        "--verifier",
        help="calibrate with the verifier (verifier .onnx) the bundle puts behind the detector: the detector's "
        "threshold drops as far as the pair still rejects --min-negatives-rejected of the negatives",
    )
    c.add_argument(
        "--min-negatives-rejected",
        type=float,
        default=0.95,
        help="with --verifier: the share of negatives the pair must reject (default 0.95)",
    )
    c.add_argument(
        "--page-size",
        default="96x192",
        help="with --verifier: the bundle's classifier input HxW (default 96x192)",
    )
    c.add_argument("--corner-model", help="with --verifier: the bundle's corner model (.onnx)")
    return p


def main_detector(argv: list[str] | None = None) -> int:
    """Entry point of `edgeecg-train detector` (and `python -m edgeecg.train.detector`)."""
    args = _parser().parse_args(argv)
    if args.command == "train":
        cfg = DetectorTrainConfig(
            data=tuple(args.data),
            val=args.val,
            out=args.out,
            model=args.model,
            imgsz=args.imgsz,
            epochs=args.epochs,
            batch=args.batch,
            workers=args.workers,
            threads=args.threads,
            seed=args.seed,
            init=args.init,
            lr0=args.lr0,
            warmup_epochs=args.warmup_epochs,
            width=args.width,
        )
        best = train(cfg)
        print(f"weights: {best}")
        if args.export:
            fields = export(best, Path(cfg.out) / "detector.onnx", cfg.imgsz)
            print(f"onnx: {Path(cfg.out) / 'detector.onnx'} ({fields['kind']}, input {fields['input_size']})")
        return 0
    if args.command == "calibrate":
        res = calibrate(
            args.data,
            args.model,
            args.max_ecg_rejected,
            args.limit,
            verifier=args.verifier,
            min_negatives_rejected=args.min_negatives_rejected,
            page_size=_page_size(args.page_size),
            corner_model=args.corner_model,
        )
        chain = res.get("chain_negatives_rejected")
        print(
            f"conf_threshold {res['conf_threshold']}: rejects {res['ecg_rejected']:.1%} of {res['ecg_images']} ECG "
            f"images and {res['negatives_rejected']:.1%} of {res['negatives']} negatives"
            + (f" ({chain:.1%} with the verifier)" if chain is not None else "")
            + f" (written to {Path(args.model).with_suffix('.json')})"
        )
        return 0
    if args.command == "export":
        fields = export(args.weights, args.out, args.imgsz, args.letterbox)
        print(f"onnx: {args.out} ({fields['kind']}, input {fields['input_size']})")
        return 0
    conf = args.conf if args.conf is not None else _sidecar_threshold(args.model)
    res = evaluate(
        args.data,
        args.model,
        conf,
        limit=args.limit,
        corners=args.corners,
        refine=args.refine,
        verifier=args.verifier,
        input_size_cls=_page_size(args.page_size),
        corner_model=args.corner_model,
    )
    if args.json:
        print(json.dumps(res))
    else:
        how = f"corners: {res['corners']}" + (", refined" if res["refine"] else "")
        how += ", with the verifier" if res["verifier"] else ""
        how += ", with the corner model" if res["corner_model"] else ""
        print(f"{res['images']} images: {res['ecg_images']} ECG, {res['negatives']} negatives ({how})")
        for key, target in TARGETS.items():
            mark = "ok" if res["meets"][key] else "MISSED"
            print(f"  {key:24s} {res[key]:7.2%}  (target >= {target:.0%})  {mark}")
        print(
            f"  median IoU {res['median_iou']:.3f}, median corner error {res['median_corner_err']:.2%} of diagonal"
        )
        by_style = ", ".join(f"{k} {v:.1%}" for k, v in res["corner_err_le_1.5pct_by_style"].items())
        print(f"  corner error <= 1.5% by style: {by_style}")
        by_style = ", ".join(
            f"{k} {v:.1%}" for k, v in res["all_four_corners_err_le_1.5pct_by_style"].items()
        )
        print(
            f"  all four corners (hidden ones too, as the warp uses them) <= 1.5%: "
            f"{res['all_four_corners_err_le_1.5pct']:.2%} ({by_style})"
        )
    return 0 if all(res["meets"].values()) else 1


def main() -> int:
    """Console entry with logging and one-line errors."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return main_detector()
    except UsageError as err:
        print(f"error: {err}")
        return 2
    except EdgeECGError as err:
        print(f"error: {err}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
