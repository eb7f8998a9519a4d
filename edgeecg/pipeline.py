"""The inference pipeline: pre-processing, the ensemble, the manifest's thresholds -> one `Result` per image.

    with Pipeline.from_bundle() as pipe:             # the default bundle shipped in the package
        for result in pipe.run_paths(["ecg.jpg"]):
            print(result.probabilities, result.positive)

The bundle's sha256 values are checked for every file before it is loaded. The classifier runs in
batches; a fused ensemble model is used when the bundle has one, else one runner per member, averaged
here. Votes count, per label, the members whose probability reaches the label's threshold.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg.backends import classifier_loader, resolve_backend, runner_class
from edgeecg.backends.base import ClassifierLoad, Runner
from edgeecg.backends.onnxruntime import ort_session_config
from edgeecg.backends.tensorrt import detector_plan, plan_targets
from edgeecg.bundle import default_bundle_dir, iter_file_entries, load_manifest, verify
from edgeecg.errors import BackendError, BundleError, EdgeECGError, UsageError
from edgeecg.io import DEFAULT_MAX_PIXELS, read_image
from edgeecg.preprocess import (
    CornerModel,
    Detector,
    Prepared,
    PreprocessConfig,
    Preprocessor,
    SamCorners,
    Verifier,
    to_model_input,
)
from edgeecg.preprocess import save_debug_montage as _save_montage

log = logging.getLogger(__name__)

#: Precision preferred when none is asked for, by backend.
#: int8w (int8-stored weights, FP32 compute) runs like fp32 in ONNX Runtime once its DequantizeLinear nodes
#: are folded; TensorRT plans are built from fp16/fp32 ONNX only.
_PREFERRED_PRECISION = {
    "tensorrt": ("fp16", "fp32"),
    "onnxruntime": ("fp32", "int8w", "fp16"),
    "torch": ("fp32",),
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


class _DebugNames:
    """Montage paths in one debug directory for one run, unique within it: `x.debug.png`, then `x-2.debug.png`
    and so on, so that a/x.jpg and b/x.png in one run never overwrite each other."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.taken: set[str] = set()

    def save(self, p: Prepared, name: str) -> None:
        """Write `p`'s stage montage under a name not yet used in this run; free the stages."""
        stem = Path(name).stem
        unique, k = stem, 1
        while unique in self.taken:
            k += 1
            unique = f"{stem}-{k}"
        self.taken.add(unique)
        path = self.directory / f"{unique}.debug.png"
        _save_montage(p, path)
        p.stages.clear()
        p.debug_image = str(path)


@dataclass
class Result:
    """What the pipeline says about one image.

    Attributes:
        image: the image's name (its path, or the index for in-memory images).
        probabilities: label -> probability (MI, AF, HYP, CD, STTC order); None when rejected or failed.
        positive: labels whose probability reaches the manifest threshold, in label order.
        votes: label -> how many members are at or above the threshold.
        member_probabilities: one label -> probability dict per ensemble member.
        box: paper box [x0, y0, x1, y1] in image pixels, when a detector ran and found it.
        corners: paper corners [[x, y] * 4] clockwise from top-left, when known.
        confidence: the detector's score for the paper.
        ecg_score: the bundle's verifier on the pre-processed page, when it has one.
        rejected: True when no ECG was found (then `reason` says why and there are no probabilities).
        reason: why it was rejected.
        error: a one-line error when the image could not be used at all (unreadable file, ...).
        timings: milliseconds per stage: decode, detect, crop / warp / resize, clahe, classify (the
            batch's time shared equally by its images), total.
        backend: the backend that classified it.
        debug_image: where the montage of its pre-processing stages was written (`debug_dir`), else None.
    """

    image: str
    probabilities: dict[str, float] | None = None
    positive: list[str] = field(default_factory=list)
    votes: dict[str, int] | None = None
    member_probabilities: list[dict[str, float]] | None = None
    box: list[float] | None = None
    corners: list[list[float]] | None = None
    confidence: float | None = None
    ecg_score: float | None = None
    rejected: bool = False
    reason: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    backend: str | None = None
    debug_image: str | None = None

    @property
    def ok(self) -> bool:
        """True when the image was classified (neither rejected nor failed)."""
        return self.error is None and not self.rejected

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; a failed image gives only {"image", "error"}."""
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        d: dict[str, Any] = {
            "image": self.image,
            "rejected": self.rejected,
            "reason": self.reason,
            "probabilities": self.probabilities,
            "positive": self.positive,
            "votes": self.votes,
            "member_probabilities": self.member_probabilities,
            "box": self.box,
            "corners": self.corners,
            "confidence": self.confidence,
            "ecg_score": self.ecg_score,
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
            "backend": self.backend,
        }
        if self.debug_image is not None:
            d["debug_image"] = self.debug_image
        return d

    def to_json(self) -> str:
        """One line of JSON (for JSONL output)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


class Ensemble:
    """The classifier: one fused model (outputs mean and per-member probabilities) or several members.

    Args:
        runners: the member runners, or a single fused runner.
        fused_outputs: for a fused model, {"mean": output name, "members": output name}; None for members.
        output_kind: what member models output: "logits" (sigmoid applied here) or "probabilities".
    """

    def __init__(
        self, runners: list[Runner], fused_outputs: dict[str, str] | None = None, output_kind: str = "logits"
    ) -> None:
        if fused_outputs is not None and len(runners) != 1:
            raise UsageError("a fused ensemble is one model")
        self.runners = runners
        self.fused_outputs = fused_outputs
        self.output_kind = output_kind

    def activate(self) -> None:
        for r in self.runners:
            r.activate()

    def deactivate(self) -> None:
        for r in self.runners:
            r.deactivate()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities for a float32 [N, 3, H, W] batch: mean [N, 5] and per member [N, M, 5]."""
        if self.fused_outputs is not None:
            out = self.runners[0].infer(x)
            members = np.asarray(out[self.fused_outputs["members"]], np.float32)
            mean = out.get(self.fused_outputs.get("mean", ""))
            mean = members.mean(axis=1) if mean is None else np.asarray(mean, np.float32)
        else:
            per = []
            for r in self.runners:
                y = next(iter(r.infer(x).values()))  # [N, 5]
                per.append(_sigmoid(y) if self.output_kind == "logits" else np.asarray(y, np.float32))
            members = np.stack(per, axis=1)  # M x [N, 5] -> [N, M, 5]
            mean = members.mean(axis=1)
        if mean.shape != (x.shape[0], len(LABELS)) or members.shape[::2] != (x.shape[0], len(LABELS)):
            raise BackendError(f"classifier gave shapes {mean.shape} and {members.shape}; expected [N, 5]")
        return mean, members


class Pipeline:
    """Pre-processing plus ensemble plus thresholds. Build it with `from_bundle`; use it as a context manager.

    Args:
        manifest: the bundle manifest.
        preprocessor: the pre-processing chain.
        ensemble: the classifier.
        backend: the classifier's backend name (reported in results).
        batch_size: images per classifier call.
        extra_runners: other runners to close with the pipeline (detector, SAM).
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        preprocessor: Preprocessor,
        ensemble: Ensemble,
        backend: str,
        batch_size: int = 8,
        extra_runners: list[Runner] | None = None,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        clf = manifest["classifier"]
        self.manifest = manifest
        self.preprocessor = preprocessor
        self.ensemble = ensemble
        self.backend = backend
        self.batch_size = batch_size
        self.thresholds = np.asarray(clf["thresholds"], np.float32)
        inp = clf["input"]
        self._norm = (
            inp["mean"],
            inp["std"],
            inp.get("channel_order", "RGB"),
            float(inp.get("scale", 255.0)),
        )
        self._extra = list(extra_runners or [])

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path | None = None,
        backend: str = "auto",
        threads: int = 0,
        precision: str | None = None,
        fused: bool | None = None,
        verify: bool = True,
        batch_size: int = 8,
        cuda_graph: bool = False,
        use_verifier: bool = True,
        ecg_check: bool | None = None,
    ) -> Pipeline:
        """Load a bundle: check its manifest and the sha256 of the files it will load, then build runners.

        Args:
            bundle_dir: the bundle directory (default: the bundle shipped in the package).
            backend: auto | onnxruntime | tensorrt | torch.
            threads: CPU threads for ONNX Runtime / torch (0: the library's default).
            precision: classifier variant ("fp32", "fp16", "int8w"); default by backend (TensorRT prefers
                fp16; ONNX Runtime fp32, then int8w, then fp16).
            fused: use the fused ensemble model (None: when the bundle has one, except under ONNX Runtime when
                it is not a grouped graph: there separate member sessions are faster).
            verify: check sha256 values before loading (leave on outside tests of this very check).
            batch_size: images per classifier call.
            cuda_graph: TensorRT only: replay a CUDA graph for batch-1 calls.
            use_verifier: run the bundle's verifier (manifest "verifier") when it has one.
            ecg_check: the old name of `use_verifier` (deprecated).
        """
        if ecg_check is not None:
            warnings.warn("ecg_check is now use_verifier", DeprecationWarning, stacklevel=2)
            use_verifier = ecg_check
        bundle = _bundle_path(bundle_dir)
        manifest = load_manifest(bundle)
        backend, precision, use_fused = _choose_classifier(manifest, bundle, backend, precision, fused)
        variant = manifest["classifier"]["variants"][precision]

        loaded = classifier_loader(backend)(
            ClassifierLoad(manifest, bundle, variant, precision, use_fused, threads, cuda_graph, verify)
        )
        files, runners = list(loaded.files), loaded.runners
        if loaded.max_batch is not None and batch_size > loaded.max_batch:
            log.info(
                "batch size %d -> %d: the largest its %s runners take", batch_size, loaded.max_batch, backend
            )
            batch_size = loaded.max_batch
        fused_outputs = None
        if use_fused:
            fused_outputs = dict(
                variant["fused"].get("outputs") or {"mean": "prob", "members": "member_probs"}
            )

        extra: list[Runner] = []
        pre = _preprocessor(manifest, bundle, backend, precision, threads, use_verifier, files, extra)
        if verify:
            _verify_files(bundle, manifest, files)
        ensemble = Ensemble(runners, fused_outputs, manifest["classifier"].get("output", "logits"))
        return cls(manifest, pre, ensemble, backend, batch_size, extra)

    # -- lifecycle ---------------------------------------------------------------------------------
    def activate(self) -> None:
        """Load every model (also done lazily on first use)."""
        try:
            self.ensemble.activate()
            for r in self._extra:
                r.activate()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Free every runner."""
        self.ensemble.deactivate()
        for r in self._extra:
            r.deactivate()

    def __enter__(self) -> Pipeline:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stages ------------------------------------------------------------------------------------
    def preprocess(self, img_bgr: np.ndarray, debug: bool = False) -> Prepared:
        """Run the pre-processing chain on one BGR image."""
        return self.preprocessor(img_bgr, debug=debug)

    def classify(self, prepared: list[Prepared], names: list[str] | None = None) -> list[Result]:
        """Results for already pre-processed images, classifying the accepted ones in batches."""
        names = names or [str(i) for i in range(len(prepared))]
        results = [self._base_result(p, n) for p, n in zip(prepared, names, strict=True)]
        todo = [i for i, p in enumerate(prepared) if p.rejected is None]
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            x = to_model_input([prepared[i].image for i in idx], *self._norm)
            t0 = time.perf_counter()
            mean, members = self.ensemble(x)
            per_image_ms = (time.perf_counter() - t0) * 1000 / len(idx)
            for row, i in enumerate(idx):
                self._fill(results[i], mean[row], members[row], per_image_ms)
        return results

    def run(
        self, images: list[np.ndarray], names: list[str] | None = None, debug_dir: str | Path | None = None
    ) -> list[Result]:
        """Classify in-memory BGR images.

        Args:
            images: uint8 HxWx3 BGR images (any size).
            names: a name per image for the results (default: the index).
            debug_dir: write a montage of the pre-processing stages per image there.
        """
        if isinstance(images, np.ndarray):
            # one image passed bare would be taken row by row: thousands of one-pixel-high "images"
            raise UsageError(
                f"run() takes a list of images, got one array of shape {images.shape}: pass [img]"
            )
        names = names or [str(i) for i in range(len(images))]
        debug = _DebugNames(debug_dir) if debug_dir is not None else None
        prepared = []
        for img, name in zip(images, names, strict=True):
            p = self.preprocess(img, debug=debug is not None)
            if debug is not None:
                debug.save(p, name)
            prepared.append(p)
        return self.classify(prepared, names)

    def run_paths(
        self,
        paths: Iterable[str | Path],
        max_pixels: int = DEFAULT_MAX_PIXELS,
        debug_dir: str | Path | None = None,
    ) -> Iterator[Result]:
        """Read, pre-process and classify image files, yielding results in input order as batches finish.

        A file that cannot be read or processed gives a Result with `error` set; the others go on.

        Args:
            paths: image files.
            max_pixels: decompression-bomb guard (see `edgeecg.io.read_image`).
            debug_dir: write a montage of the pre-processing stages per image there.
        """
        chunk: list[tuple[str, Prepared | None, str | None, float]] = []
        debug = _DebugNames(debug_dir) if debug_dir is not None else None
        for path in paths:
            chunk.append(self._load(Path(path), max_pixels, debug))
            if len(chunk) >= self.batch_size:
                yield from self._finish(chunk)
                chunk = []
        if chunk:
            yield from self._finish(chunk)

    # -- internals ---------------------------------------------------------------------------------
    def _load(self, path: Path, max_pixels: int, debug: _DebugNames | None):
        name = str(path)
        t0 = time.perf_counter()
        try:
            img = read_image(path, max_pixels=max_pixels)
            decode_ms = (time.perf_counter() - t0) * 1000
            p = self.preprocess(img, debug=debug is not None)
            del img
            if debug is not None:
                debug.save(p, name)
        except EdgeECGError as err:
            return name, None, str(err), 0.0
        except (ValueError, MemoryError) as err:  # OpenCV or numpy on a strange image
            return name, None, f"{path}: cannot process ({type(err).__name__}: {err})".splitlines()[0], 0.0
        return name, p, None, decode_ms

    def _finish(self, chunk) -> Iterator[Result]:
        good = [(n, p, d) for n, p, e, d in chunk if e is None]
        try:
            classified = iter(self.classify([p for _, p, _ in good], [n for n, _, _ in good]))
        except EdgeECGError as err:  # a backend failure fails this batch's images, not the run
            classified = iter([Result(n, error=f"{n}: {err}") for n, _, _ in good])
        decode = {n: d for n, _, d in good}
        for name, _, err, _ in chunk:
            if err is not None:
                yield Result(name, error=err)
                continue
            r = next(classified)
            if r.error is None:
                r.timings = {"decode": decode[name], **r.timings}
                r.timings["total"] = r.timings.get("total", 0.0) + decode[name]
            yield r

    def _base_result(self, p: Prepared, name: str) -> Result:
        timings = {k: v * 1000 for k, v in p.timings.items() if k != "total"}
        timings["total"] = p.timings.get("total", sum(p.timings.values())) * 1000
        return Result(
            image=name,
            box=None if p.box is None else [round(float(v), 2) for v in p.box],
            corners=None if p.corners is None else [[round(float(a), 2) for a in c] for c in p.corners],
            confidence=round(float(p.confidence), 4),
            ecg_score=None if p.ecg_score is None else round(float(p.ecg_score), 4),
            rejected=p.rejected is not None,
            reason=p.rejected,
            timings=timings,
            backend=self.backend,
            debug_image=p.debug_image,
        )

    def _fill(self, r: Result, mean: np.ndarray, members: np.ndarray, classify_ms: float) -> None:
        thr = self.thresholds
        r.probabilities = {lab: round(float(v), 6) for lab, v in zip(LABELS, mean, strict=True)}
        r.positive = [lab for lab, v, t in zip(LABELS, mean, thr, strict=True) if v >= t]
        votes = (members >= thr[None, :]).sum(axis=0)  # [M, 5] -> [5]
        r.votes = {lab: int(v) for lab, v in zip(LABELS, votes, strict=True)}
        r.member_probabilities = [
            {lab: round(float(v), 6) for lab, v in zip(LABELS, m, strict=True)} for m in members
        ]
        r.timings["classify"] = classify_ms
        r.timings["total"] = r.timings.get("total", 0.0) + classify_ms


def _bundle_path(bundle_dir: str | Path | None) -> Path:
    """The bundle directory: the one given, else the package's default (which must be installed)."""
    bundle = Path(bundle_dir) if bundle_dir is not None else default_bundle_dir()
    if bundle_dir is None and not (bundle / "manifest.json").is_file():
        raise BundleError(
            f"the default model bundle is not installed ({bundle}); pass --bundle DIR "
            "(build one with edgeecg-export)"
        )
    return bundle


def _choose_classifier(
    manifest: dict[str, Any], bundle: Path, backend: str, precision: str | None, fused: bool | None
) -> tuple[str, str, bool]:
    """(backend, precision, whether to run the fused ensemble) for this bundle and these wishes."""
    variants = manifest["classifier"]["variants"]
    if backend == "auto":
        prec = _pick_precision(variants, precision, "tensorrt")
        backend = resolve_backend("auto", manifest, plan_targets(variants[prec], fused), prec, bundle)
    else:
        resolve_backend(backend, manifest, [], "")  # validates the name
    precision = _pick_precision(variants, precision, backend)
    variant = variants[precision]
    use_fused = _use_fused(variant, fused, backend)
    log.info(
        "bundle %s: backend %s, precision %s, %s",
        bundle,
        backend,
        precision,
        "fused ensemble" if use_fused else f"{len(variant.get('members', []))} members",
    )
    return backend, precision, use_fused


def _pick_precision(variants: dict[str, Any], precision: str | None, backend: str) -> str:
    if precision is not None:
        if precision not in variants:
            raise UsageError(f"the bundle has no {precision!r} classifier (it has: {', '.join(variants)})")
        return precision
    for p in _PREFERRED_PRECISION.get(backend, ("fp32",)):
        if p in variants:
            return p
    return next(iter(variants))


def _use_fused(variant: dict[str, Any], fused: bool | None, backend: str) -> bool:
    if backend == "torch":
        if fused:
            raise UsageError("the torch backend runs the members' checkpoints; it has no fused model")
        return False
    if fused and not variant.get("fused"):
        raise UsageError("this bundle has no fused ensemble model")
    if fused is False and not variant.get("members"):
        raise UsageError("this bundle has only a fused ensemble model, no members")
    if fused is not None:
        return fused
    entry = variant.get("fused")
    if not entry:
        return False
    # members side by side in one graph measured 0.83-0.98x of separate sessions on CPU (benchmarks); a
    # grouped graph 1.7x faster, so ONNX Runtime takes the fused graph by default only when it is grouped
    parallel = entry.get("fusion") != "grouped"
    return not (backend == "onnxruntime" and variant.get("members") and parallel)


def _preprocessor(
    manifest: dict[str, Any],
    bundle: Path,
    backend: str,
    precision: str,
    threads: int,
    use_verifier: bool,
    files: list[str],
    runners: list[Runner],
) -> Preprocessor:
    """The bundle's pre-processing chain: the detector (its TensorRT plan where one loads), SAM, the verifier
    and the corner model in ONNX Runtime. Appends the files it will load to `files` and its runners to
    `runners` (the caller verifies and activates them)."""
    det_section = manifest.get("detector")
    cfg = PreprocessConfig.from_manifest(manifest.get("preprocess"), det_section)

    def ort(entry: dict[str, Any], name: str) -> Runner:
        files.append(entry["file"])
        runners.append(runner_class("onnxruntime")(bundle / entry["file"], threads=threads, name=name))
        return runners[-1]

    detector = sam = verifier = corner_model = None
    if det_section:
        runners.append(_detector_runner(manifest, bundle, backend, precision, threads, files))
        detector = Detector.from_manifest(runners[-1], det_section)
    sam_section = manifest.get("sam")
    if sam_section and cfg.mode == "warp" and cfg.corners == "sam":
        sam = SamCorners(
            ort(sam_section["encoder"], "sam-encoder"), ort(sam_section["decoder"], "sam-decoder")
        )
    if manifest.get("verifier") and use_verifier:
        verifier = Verifier.from_manifest(ort(manifest["verifier"], "verifier"), manifest["verifier"])
    if manifest.get("corner_model") and cfg.mode == "warp":
        cm = manifest["corner_model"]
        corner_model = CornerModel.from_manifest(ort(cm, "corner-model"), cm)
    inp = manifest["classifier"]["input"]
    size = (int(inp["height"]), int(inp["width"]))
    return Preprocessor(cfg, detector, size, sam=sam, verifier=verifier, corner_model=corner_model)


def _detector_runner(
    manifest, bundle: Path, backend: str, precision: str, threads: int, files: list[str]
) -> Runner:
    """The detector's runner: its TensorRT plan under the tensorrt backend when the bundle has one that loads
    here, else ONNX Runtime."""
    section = manifest["detector"]
    entry = detector_plan(manifest, bundle, precision) if backend == "tensorrt" else None
    if entry is not None:
        files.append(entry["file"])
        return runner_class("tensorrt")(bundle / entry["file"], name="detector")
    files.append(section["file"])
    return runner_class("onnxruntime")(
        bundle / section["file"], threads=threads, name="detector", session_config=ort_session_config(section)
    )


def _verify_files(bundle: Path, manifest: dict[str, Any], files: list[str]) -> None:
    """sha256 of every file about to be loaded; each must also be named with a sha256 in the manifest."""
    verify(bundle, manifest, files)
    listed = {e["file"] for e in iter_file_entries(manifest)}
    for f in files:
        if f not in listed:
            raise BundleError(f"bundle file {f} has no sha256 in the manifest")
