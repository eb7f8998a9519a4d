"""The runtime's pre-processing as a training hook, so a model learns from what serving will feed it.

`edgeecg-train ... --set preprocess=edgeecg --set runtime_detector=DET.onnx` runs every training image
through `Preprocessor` with that detector (its `.json` beside it, as detector training writes
it) and the configured mode and corner source: the model then learns the detector's and the corner
finder's errors instead of meeting them first at run time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg.backends import runner_class
from edgeecg.errors import UsageError
from edgeecg.preprocess.chain import PreprocessConfig, Preprocessor
from edgeecg.preprocess.cornermodel import CornerModel
from edgeecg.preprocess.detector import Detector
from edgeecg.preprocess.verifier import Verifier
from edgeecg.sidecar import read_sidecar

__all__ = ["RuntimeHook", "training_hook"]


class RuntimeHook:
    """`(img_bgr, geometry) -> img_bgr` through the runtime chain; ground-truth geometry is ignored.

    Args:
        detector_onnx: the paper detector (ONNX); its manifest fields sit beside it (`DET.onnx` -> `DET.json`).
        size_hw: model input (height, width).
        mode: crop | warp | none.
        corners: keypoints | classical (for warp).
        refine: snap the warp's corners onto the paper's edges.
        corner_model: the corner model ONNX (its `.json` beside it, as `edgeecg-train corners` writes it).
        verifier: the verifier ONNX (its `.json` beside it): it turns pages as the runtime does (upside down,
            a quarter-turn), so training sees them the right way up as serving will; it rejects nothing here.
        clahe_clip, clahe_tile: CLAHE settings (tile x tile).
        threads: ONNX Runtime threads for the detector.
    """

    def __init__(
        self,
        detector_onnx: str | Path,
        size_hw: tuple[int, int],
        mode: str = "warp",
        corners: str = "classical",
        refine: bool = True,
        corner_model: str | Path | None = None,
        verifier: str | Path | None = None,
        clahe_clip: float = 2.0,
        clahe_tile: int = 8,
        threads: int = 1,
    ) -> None:
        # detector training writes the .json beside it (and calibrates it)
        self.detector = _with_sidecar(
            detector_onnx, "runtime_detector", "written by detector training", Detector, "detector", threads
        )
        # Never reject a training image: a missed sheet falls back to the whole image (mode none).
        self.cfg = PreprocessConfig(
            mode=mode,
            corners=corners,
            refine=refine,
            clahe_clip=clahe_clip,
            clahe_tiles=(clahe_tile, clahe_tile),
            conf_threshold=0.0,
        )
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        loaded_corner_model = loaded_verifier = None
        if corner_model:
            loaded_corner_model = _with_sidecar(
                corner_model,
                "runtime_corner_model",
                "edgeecg-train corners",
                CornerModel,
                "corner-model",
                threads,
            )
        if verifier:
            loaded_verifier = _with_sidecar(
                verifier, "runtime_verifier", "edgeecg-train verifier", Verifier, "verifier", threads
            )
            loaded_verifier.threshold = 0.0  # never reject a training image: only its turns are wanted here
        self.pre = Preprocessor(
            self.cfg, self.detector, self.size_hw, corner_model=loaded_corner_model, verifier=loaded_verifier
        )
        self.whole = Preprocessor(replace(self.cfg, mode="none"), None, self.size_hw)
        self.fallbacks = 0

    def __call__(self, img: np.ndarray, geometry: dict | None = None) -> np.ndarray:
        prep = self.pre(img)
        if prep.image is not None:
            return prep.image
        self.fallbacks += 1
        return self.whole(img).image


def _with_sidecar(path: str | Path, option: str, maker: str, cls: Any, name: str, threads: int) -> Any:
    """`cls` over the ONNX at `path` (an ONNX Runtime runner, activated on first use), its manifest fields
    from the .json its trainer (`maker`) wrote beside it."""

    onnx = Path(path)
    needs = f"{option} needs {onnx} and {onnx.with_suffix('.json')} ({maker})"
    if not onnx.is_file():
        raise UsageError(needs)
    meta = read_sidecar(onnx, error=UsageError, missing=needs)
    return cls.from_manifest(runner_class("onnxruntime")(onnx, threads=threads, name=name), meta)


def training_hook(size_hw: tuple[int, int], cfg: Any) -> RuntimeHook:
    """The hook `edgeecg.train.data.make_preprocess` uses for `preprocess: edgeecg`."""
    if not cfg.runtime_detector:
        raise UsageError(
            "preprocess: edgeecg needs runtime_detector (a detector .onnx from detector training)"
        )
    return RuntimeHook(
        cfg.runtime_detector,
        size_hw,
        mode=cfg.runtime_mode,
        corners=cfg.runtime_corners,
        refine=cfg.runtime_refine,
        corner_model=getattr(cfg, "runtime_corner_model", "") or None,
        verifier=getattr(cfg, "runtime_verifier", "") or None,
        clahe_clip=cfg.clahe_clip,
        clahe_tile=cfg.clahe_tile,
    )
