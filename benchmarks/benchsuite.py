"""What the benchmark suite needs, built here and cached: settings, a model bundle, a 12 MP photo, memory probes.

Nothing is downloaded. The bundle is made of random-init timm ConvNeXt members (fold checkpoints written the
way training writes them) and a random-init yolov8n-pose detector built from its yaml, exported through
`edgeecg.export` exactly as a trained bundle would be (ONNX members checked against torch, one fused graph,
the detector as plain ONNX). Random weights cost the same time as trained ones; only the detector's
confidence means nothing, so the bundle's confidence threshold is set to 0 and every photo reaches the
classifier, as a real photo of an ECG would.

Everything lands in build/bench-models/<key>/, the key naming every setting that changes a file, so a
second run reuses it. Settings come from the environment (see `BenchSettings.from_env`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg import LABELS

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
#: Bump when the builder changes what it writes, so stale caches are not reused.
BUILDER_VERSION = 2  # 2: fused graphs are grouped where the architecture allows
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
#: The tiny model the CI smoke run uses: the real architecture's code path at a fraction of the cost.
TINY_KWARGS = {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1]}


def _ints(text: str, sep: str = ",") -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(" ", "").split(sep) if v)


@dataclass(frozen=True)
class BenchSettings:
    """What the suite builds and how it measures.

    Attributes:
        arch: timm model of every ensemble member.
        model_kwargs: JSON of extra timm constructor arguments ("" for none).
        height: classifier input height.
        width: classifier input width.
        folds: ensemble members.
        det_size: detector input (square), pixels.
        photo: synthetic photo size (w, h).
        threads: CPU threads for ONNX Runtime, torch and OpenCV.
        batch_sizes: classifier batch sizes.
        budget_s: time to spend on the timed rounds of one benchmark (rounds = budget / one call).
        min_rounds: fewest timed rounds.
        max_rounds: most timed rounds.
        cap_s: at most this long for one benchmark's timed rounds (fewer than min_rounds, never under 5, for
            slow calls such as torch at batch 8).
        warmup: untimed calls before timing.
        cache: where built models and the photo are kept.
        tiny: the CI smoke settings (set by EDGEECG_BENCH_TINY=1).
    """

    arch: str = "convnext_atto"
    model_kwargs: str = ""
    height: int = 256
    width: int = 512
    folds: int = 5
    det_size: int = 320
    photo: tuple[int, int] = (4000, 3000)
    threads: int = 2
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    budget_s: float = 3.0
    min_rounds: int = 20
    max_rounds: int = 200
    cap_s: float = 20.0
    warmup: int = 2
    cache: str = str(ROOT / "build" / "bench-models")
    tiny: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BenchSettings:
        """Settings from EDGEECG_BENCH_* variables.

        EDGEECG_BENCH_TINY=1 starts from the smoke settings (tiny ConvNeXt, 64x128 input, 2 folds, detector
        at 64, 400x300 photo, batch 1 and 2, one round). Then any of: EDGEECG_BENCH_ARCH (timm name),
        EDGEECG_BENCH_MODEL_KWARGS (JSON), EDGEECG_BENCH_INPUT (HxW, e.g. 384x384), EDGEECG_BENCH_FOLDS,
        EDGEECG_BENCH_DET_SIZE, EDGEECG_BENCH_PHOTO (WxH), EDGEECG_BENCH_THREADS, EDGEECG_BENCH_BATCHES
        (e.g. 1,4,8), EDGEECG_BENCH_BUDGET (seconds per benchmark), EDGEECG_BENCH_MIN_ROUNDS,
        EDGEECG_BENCH_MAX_ROUNDS, EDGEECG_BENCH_CAP (seconds), EDGEECG_BENCH_WARMUP, EDGEECG_BENCH_CACHE (directory).
        """
        env = dict(os.environ if env is None else env)
        s = cls()
        if env.get("EDGEECG_BENCH_TINY") == "1":
            s = replace(
                s,
                model_kwargs=json.dumps(TINY_KWARGS, sort_keys=True),
                height=64,
                width=128,
                folds=2,
                det_size=64,
                photo=(400, 300),
                batch_sizes=(1, 2),
                budget_s=0.0,
                min_rounds=1,
                max_rounds=1,
                warmup=1,
                tiny=True,
            )
        get = env.get
        kw: dict[str, Any] = {}
        if get("EDGEECG_BENCH_ARCH"):
            kw["arch"] = get("EDGEECG_BENCH_ARCH")
        if get("EDGEECG_BENCH_MODEL_KWARGS") is not None:
            text = get("EDGEECG_BENCH_MODEL_KWARGS", "").strip()
            kw["model_kwargs"] = json.dumps(json.loads(text), sort_keys=True) if text else ""
        if get("EDGEECG_BENCH_INPUT"):
            kw["height"], kw["width"] = _ints(get("EDGEECG_BENCH_INPUT", "").lower(), "x")
        if get("EDGEECG_BENCH_PHOTO"):
            kw["photo"] = _ints(get("EDGEECG_BENCH_PHOTO", "").lower(), "x")
        for key, name, conv in (
            ("folds", "FOLDS", int),
            ("det_size", "DET_SIZE", int),
            ("threads", "THREADS", int),
            ("budget_s", "BUDGET", float),
            ("min_rounds", "MIN_ROUNDS", int),
            ("max_rounds", "MAX_ROUNDS", int),
            ("cap_s", "CAP", float),
            ("warmup", "WARMUP", int),
        ):
            if get(f"EDGEECG_BENCH_{name}"):
                kw[key] = conv(get(f"EDGEECG_BENCH_{name}"))
        if get("EDGEECG_BENCH_BATCHES"):
            kw["batch_sizes"] = _ints(get("EDGEECG_BENCH_BATCHES", ""))
        if get("EDGEECG_BENCH_CACHE"):
            kw["cache"] = get("EDGEECG_BENCH_CACHE")
        return replace(s, **kw)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The timm constructor arguments."""
        return json.loads(self.model_kwargs) if self.model_kwargs else {}

    def bundle_key(self, fp16: bool = False) -> str:
        """Directory name of the bundle these settings build."""
        parts = {
            "v": BUILDER_VERSION,
            "arch": self.arch,
            "kw": self.model_kwargs,
            "in": [self.height, self.width],
            "folds": self.folds,
            "det": self.det_size,
            "fp16": fp16,
        }
        digest = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]
        tag = "tiny" if self.model_kwargs else self.arch
        return f"{tag}-{self.height}x{self.width}-f{self.folds}-det{self.det_size}{'-fp16' if fp16 else ''}-{digest}"

    def describe(self) -> dict[str, Any]:
        """The settings as JSON-ready values (for the report)."""
        d = asdict(self)
        d.pop("extra")
        d["photo"] = list(self.photo)
        d["batch_sizes"] = list(self.batch_sizes)
        return d


def plan_rounds(s: BenchSettings, one_call_s: float) -> int:
    """Timed rounds for a call that takes `one_call_s`: the budget's worth within [min_rounds, max_rounds],
    but no more than `cap_s` of timing (and never under 5 rounds for that cap)."""
    if s.min_rounds >= s.max_rounds:
        return s.max_rounds
    one = max(one_call_s, 1e-6)
    rounds = min(max(s.budget_s / one, s.min_rounds), s.max_rounds)
    return max(1, int(min(rounds, max(s.cap_s / one, 5))))


# -- caching ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file, so two runs never build the same cache entry at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quiet_yolo_env() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / "build" / "yolo-config"))


@dataclass(frozen=True)
class BenchModels:
    """Paths of one built benchmark bundle.

    Attributes:
        root: the cache entry.
        bundle: the model bundle directory (manifest.json inside).
        checkpoints: the members' safetensors files (with JSON sidecars), for the torch backends.
        detector_pt: the ultralytics detector checkpoint the bundle's detector came from.
    """

    root: Path
    bundle: Path
    checkpoints: tuple[Path, ...]
    detector_pt: Path

    @property
    def manifest(self) -> dict[str, Any]:
        """The bundle's manifest."""
        return json.loads((self.bundle / "manifest.json").read_text(encoding="utf-8"))

    def member_files(self, precision: str = "fp32") -> list[Path]:
        """The members' ONNX files."""
        variant = self.manifest["classifier"]["variants"][precision]
        return [self.bundle / m["file"] for m in variant["members"]]

    def fused_file(self, precision: str = "fp32") -> Path:
        """The fused ensemble's ONNX file."""
        return self.bundle / self.manifest["classifier"]["variants"][precision]["fused"]["file"]

    def detector_file(self) -> Path:
        """The detector's ONNX file."""
        return self.bundle / self.manifest["detector"]["file"]


def _write_checkpoints(s: BenchSettings, out: Path) -> list[Path]:
    from edgeecg._lazy import require  # noqa: PLC0415
    from edgeecg.train.checkpoint import save_weights  # noqa: PLC0415
    from edgeecg.train.model import create_model  # noqa: PLC0415

    torch = require("torch")
    out.mkdir(parents=True, exist_ok=True)
    inp = {
        "height": s.height,
        "width": s.width,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "channel_order": "RGB",
    }
    paths = []
    for fold in range(s.folds):
        torch.manual_seed(1000 + fold)  # deterministic: the same settings give the same weights
        model = create_model(s.arch, len(LABELS), **s.kwargs)
        path = out / f"fold{fold}.safetensors"
        side = {
            "model": s.arch,
            "input": inp,
            "fold": fold,
            "seed": 1000 + fold,
            "data": "random init (benchmark)",
        }
        if s.kwargs:
            side["model_kwargs"] = s.kwargs
        save_weights(path, model.state_dict(), side)
        paths.append(path)
    return paths


def _write_detector(path: Path) -> Path:
    """A random-init yolov8n-pose (one class, four corner keypoints) saved as an ultralytics checkpoint."""
    _quiet_yolo_env()
    from edgeecg._lazy import require  # noqa: PLC0415

    torch = require("torch")
    ultralytics = require("ultralytics")
    from ultralytics.nn.tasks import PoseModel  # noqa: PLC0415

    torch.manual_seed(0)
    yolo = ultralytics.YOLO("yolov8n-pose.yaml", task="pose")
    yolo.model = PoseModel("yolov8n-pose.yaml", nc=1, data_kpt_shape=(4, 3), verbose=False)
    yolo.model.names = {0: "ecg"}
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return path


def build_checkpoints(s: BenchSettings) -> tuple[Path, ...]:
    """The members' random-init checkpoints for `s`, cached: the torch groups use them without the ONNX
    export (which for five ConvNeXt-Base members would cost minutes of a GPU lease), and the benchmark
    bundle is exported from them."""
    root = Path(s.cache) / f"{s.bundle_key()}-checkpoints"
    with _locked(Path(s.cache) / f"{root.name}.lock"):
        if not (root / "READY").is_file():
            shutil.rmtree(root, ignore_errors=True)
            _write_checkpoints(s, root)
            (root / "READY").write_text(json.dumps(s.describe(), indent=1) + "\n")
    return tuple(sorted(root.glob("*.safetensors")))


def build_detector_checkpoint(s: BenchSettings) -> Path:
    """The random-init ultralytics detector checkpoint, cached: the torch detector group and every benchmark
    bundle's detector (exported at its own input size) come from it."""
    path = Path(s.cache) / "detector-yolov8n-pose" / "detector.pt"
    with _locked(Path(s.cache) / "detector-yolov8n-pose.lock"):
        if not path.is_file():
            _write_detector(path)
    return path


def build_models(
    s: BenchSettings, fp16: bool = False, progress: Callable[[str], None] = log.info
) -> BenchModels:
    """The benchmark bundle for `s`, built on first use and cached.

    Args:
        s: settings.
        fp16: also write the mixed FP16 ONNX variant (what TensorRT plans are built from).
        progress: receives one line per export step.
    """
    root = Path(s.cache) / s.bundle_key(fp16)
    ready = root / "READY"
    with _locked(Path(s.cache) / f"{root.name}.lock"):
        if not ready.is_file():
            from edgeecg.bundle import write_manifest  # noqa: PLC0415
            from edgeecg.export.bundle_writer import ExportConfig, export_bundle  # noqa: PLC0415

            shutil.rmtree(root, ignore_errors=True)
            progress(f"building benchmark models in {root}")
            # the same cached checkpoints the torch groups use, not a second copy
            cks = build_checkpoints(s)
            det = build_detector_checkpoint(s)
            cfg = ExportConfig(
                checkpoints=tuple(str(c) for c in cks),
                out=str(root / "bundle"),
                detector=str(det),
                detector_imgsz=s.det_size,
                precision="fp16" if fp16 else "fp32",
                fused=True,
                parity_samples=8,
                command=f"benchmarks/benchsuite.py build_models ({s.bundle_key(fp16)})",
            )
            quiet = logging.getLogger("ultralytics")
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                manifest = export_bundle(cfg, progress)
            finally:
                quiet.setLevel(level)
            # a random detector's confidence means nothing: let every photo through, as a real ECG would be
            manifest["detector"]["conf_threshold"] = 0.0
            manifest["preprocess"]["conf_threshold"] = 0.0
            manifest["provenance"]["benchmark"] = (
                "random init; confidence threshold 0 so photos reach the classifier"
            )
            write_manifest(root / "bundle", manifest)
            ready.write_text(json.dumps(s.describe(), indent=1) + "\n")
    return BenchModels(root, root / "bundle", build_checkpoints(s), build_detector_checkpoint(s))


@dataclass(frozen=True)
class Photo:
    """A synthetic phone photo of a printed ECG: the JPEG file and its ground truth.

    Attributes:
        path: the JPEG (quality 92, as a phone writes).
        quad: float32 [4, 2] paper corners, clockwise from the paper's top-left.
        size: (w, h).
    """

    path: Path
    quad: np.ndarray
    size: tuple[int, int]

    @property
    def box(self) -> np.ndarray:
        """The paper's bounding box, xyxy."""
        return np.concatenate([self.quad.min(0), self.quad.max(0)]).astype(np.float32)

    def read(self) -> np.ndarray:
        """The decoded BGR image."""
        img = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read {self.path}")
        return img


def make_photo(s: BenchSettings, seed: int = 7) -> Photo:
    """The synthetic photo for `s` (edgeecg.synth "photo" scene at `s.photo`), rendered once and cached."""
    w, h = s.photo
    path = Path(s.cache) / f"photo-{w}x{h}-s{seed}.jpg"
    meta = path.with_suffix(".json")
    with _locked(Path(s.cache) / f"{path.stem}.lock"):
        if not (path.is_file() and meta.is_file()):
            from edgeecg.synth.scenes import make_scene  # noqa: PLC0415
            from edgeecg.synth.waveforms import simulate  # noqa: PLC0415

            rng = np.random.default_rng(seed)
            scene = make_scene(simulate(rng), "photo", rng, size=(w, h))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.jpg")
            if not cv2.imwrite(str(tmp), scene.image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                raise OSError(f"cannot write {tmp}")
            tmp.replace(path)
            meta.write_text(json.dumps({"paper_quad": scene.geometry.paper_quad.tolist(), "size": [w, h]}))
    quad = np.asarray(json.loads(meta.read_text())["paper_quad"], np.float32)
    return Photo(path, quad, (w, h))


def default_bundle() -> Path | None:
    """The real bundle to measure beside the benchmark one: EDGEECG_BENCH_BUNDLE when set, else the package's
    default bundle when it is installed (manifest.json present), else None."""
    from edgeecg.bundle import default_bundle_dir  # noqa: PLC0415

    chosen = os.environ.get("EDGEECG_BENCH_BUNDLE")
    d = Path(chosen) if chosen else default_bundle_dir()
    return d if (d / "manifest.json").is_file() else None


# -- memory ----------------------------------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory while a block runs, native allocations included (tracemalloc sees only Python's).

    On Linux the process's high-water mark (VmHWM) is reset on entry by writing 5 to /proc/self/clear_refs
    and read on exit, so `peak_mb` is the block's own peak RSS and `delta_mb` what it added above the RSS it
    started with. Where the reset is not allowed, the peak is the process's lifetime peak (`reset` False).
    """

    def __enter__(self) -> PeakRss:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.start_kb = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kb("VmHWM")
        self.peak_mb = None if hwm is None else round(hwm / 1024, 1)
        self.delta_mb = (
            None if hwm is None or self.start_kb is None else round((hwm - self.start_kb) / 1024, 1)
        )

    def info(self) -> dict[str, Any]:
        """extra_info fields for pytest-benchmark."""
        return {"peak_rss_mb": self.peak_mb, "peak_rss_delta_mb": self.delta_mb, "peak_rss_reset": self.reset}


def set_threads(n: int) -> None:
    """Fix the CPU thread counts of OpenCV and (when imported) torch."""
    cv2.setNumThreads(n)
    import sys  # noqa: PLC0415

    torch = sys.modules.get("torch")
    if torch is not None and n > 0:
        torch.set_num_threads(n)
