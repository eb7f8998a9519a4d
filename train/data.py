"""Training data: labelled image sources, weighted mixing, pre-processing hook, augmentation, tensors.

A *source* gives `len(src)`, `src.labels` [n, 5] and `src.load(i) -> (img_bgr, geometry | None)`.
`TrainDataset` draws from one or more sources; the `EpochSampler` yields `(item, sample_seed)` pairs,
a fixed function of (seed, epoch), so data order and augmentation repeat exactly after a resume and do
not depend on the number of DataLoader workers.

The pre-processing hook is any callable `(img_bgr, geometry_or_None) -> img_bgr`; the default,
`CropClahe`, crops the ground-truth paper box and equalises with the runtime's own functions
(`edgeecg.preprocess.geometry.crop_resize`, `edgeecg.preprocess.clahe.apply_clahe`), so training and
serving share the code.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.bundle import sha256_file
from edgeecg.errors import BundleError, InputError, UsageError
from edgeecg.preprocess.chain import to_model_input
from edgeecg.preprocess.clahe import apply_clahe
from edgeecg.preprocess.geometry import RESAMPLER, crop_resize, warp_to_size
from edgeecg.sidecar import read_json_object
from edgeecg.synth.dataset import MIX_WEIGHTS, item_rng
from edgeecg.synth.scenes import make_scene
from edgeecg.synth.waveforms import FINDINGS, simulate
from edgeecg.train.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from edgeecg.train.config import DataConfig, TrainConfig
from edgeecg.train.leadmaps import lead_findings, lead_mask, map_target
from edgeecg.train.runtime_chain import training_hook

# Imported inside functions, so they load only when used: tqdm, and edgeecg.train.augment (albumentations).

log = logging.getLogger(__name__)

__all__ = [
    "Preprocess",
    "CropClahe",
    "WarpClahe",
    "ImageFolderSource",
    "SynthSource",
    "Subset",
    "make_source",
    "TrainDataset",
    "EpochSampler",
    "to_tensor",
    "make_preprocess",
    "CachedSource",
    "preprocess_key",
    "FINDINGS",
    "findings_matrix",
]

Preprocess = Callable[[np.ndarray, "dict | None"], np.ndarray]


def findings_matrix(texts: Sequence[str], where: str = "findings") -> np.ndarray:
    """0/1 float32 [n, len(FINDINGS)] from ';'-joined finding names (empty: none).

    Raises:
        UsageError: a name that is not one of FINDINGS (say where).
    """
    index = {name: j for j, name in enumerate(FINDINGS)}
    out = np.zeros((len(texts), len(FINDINGS)), np.float32)
    for i, text in enumerate(texts):
        for name in filter(None, (t.strip() for t in (text or "").split(";"))):
            if name not in index:
                raise UsageError(f"{where}: unknown finding {name!r} (known: {', '.join(FINDINGS)})")
            out[i, index[name]] = 1.0
    return out


class CropClahe:
    """Default pre-processing: crop the paper box from the geometry (if any), resize, then CLAHE.

    Args:
        size_hw: model input (height, width).
        clip: CLAHE clip limit.
        tile: CLAHE tile grid (tile x tile).
    """

    def __init__(self, size_hw: tuple[int, int], clip: float = 2.0, tile: int = 8) -> None:
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        self.clip, self.tile = float(clip), int(tile)

    def __call__(self, img: np.ndarray, geometry: dict | None) -> np.ndarray:

        # Resize first: CLAHE on the small image is cheap.
        return apply_clahe(self.flatten(img, geometry), clip=self.clip, tiles=(self.tile, self.tile))

    def flatten(self, img: np.ndarray, geometry: dict | None) -> np.ndarray:
        """The paper at the input size, before CLAHE: its ground-truth box (else the whole image), resized."""

        box = (geometry or {}).get("paper_box")
        h, w = img.shape[:2]
        box = np.asarray(box if box is not None else (0, 0, w, h), dtype=np.float64)
        return crop_resize(img, box, self.size_hw)


class WarpClahe(CropClahe):
    """Warp pre-processing: the ground-truth paper quadrilateral (if any) flattened to the input size, then CLAHE.

    The runtime's `warp` mode does the same with the detector's (or the classical finder's) corners;
    their error is what the perspective augmentation stands in for during training.
    """

    def flatten(self, img: np.ndarray, geometry: dict | None) -> np.ndarray:
        """The ground-truth quad warped to the input size; without one, the whole image resized."""

        quad = (geometry or {}).get("paper_quad")
        if quad is None:
            return super().flatten(img, None)
        return warp_to_size(img, np.asarray(quad, np.float32), self.size_hw)[0]


def _resize_only(size_hw: tuple[int, int]) -> Preprocess:
    def run(img: np.ndarray, geometry: dict | None) -> np.ndarray:
        return cv2.resize(img, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)

    return run


def make_preprocess(cfg: TrainConfig) -> Preprocess:
    """The pre-processing hook the config names (crop_clahe, edgeecg, none)."""
    size = (cfg.input_height, cfg.input_width)
    if cfg.preprocess == "crop_clahe":
        return CropClahe(size, cfg.clahe_clip, cfg.clahe_tile)
    if cfg.preprocess == "warp_clahe":
        return WarpClahe(size, cfg.clahe_clip, cfg.clahe_tile)
    if cfg.preprocess == "none":
        return _resize_only(size)
    # "edgeecg": the runtime's own chain (paper detection, corners, warp, CLAHE, the verifier's turn)

    return training_hook(size, cfg)


def _fit_size(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """`img` at (height, width), resized only where a hook returned another size."""
    h, w = size_hw
    return img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def preprocess_key(cfg: TrainConfig) -> str:
    """What determines a pre-processed image besides its source (for cache keys)."""

    key = f"{cfg.preprocess}/clip{cfg.clahe_clip}/tile{cfg.clahe_tile}/{cfg.input_height}x{cfg.input_width}"
    key += f"/{RESAMPLER}"
    if cfg.preprocess == "edgeecg":  # the detector file's content, not just its name
        det = Path(cfg.runtime_detector)
        digest = sha256_file(det) if det.is_file() else "missing"
        key += f"/{cfg.runtime_mode}/{cfg.runtime_corners}/refine{int(cfg.runtime_refine)}/{digest}"
        if cfg.runtime_corner_model:
            cm = Path(cfg.runtime_corner_model)
            key += f"/corners{sha256_file(cm) if cm.is_file() else 'missing'}"
            key += _corner_passes_key(cm.with_suffix(".json"))
        if cfg.runtime_verifier:
            vp = Path(cfg.runtime_verifier)
            key += f"/check{sha256_file(vp) if vp.is_file() else 'missing'}"
    return key


def _corner_passes_key(sidecar: Path) -> str:
    """Empty for one pass of the corner model (as every cache before "passes" was built), else "xN": the
    sidecar's passes change the corners, so the cached pages too."""
    try:
        passes = read_json_object(sidecar).get("passes", 1)
    except BundleError:
        return ""  # loading the model says what is wrong with it
    return "" if passes == 1 else f"x{passes}"


def _source_identity(source: Any) -> dict:
    cfg = getattr(source, "cfg", None)
    if isinstance(source, ImageFolderSource):
        ident = {"csv": str(source.csv_path.resolve()), "root": str(Path(source.root).resolve())}
        for name, path in (("csv_stat", source.csv_path), ("geo_stat", source.root / "geometry.jsonl")):
            if path.is_file():
                st = path.stat()
                ident[name] = [st.st_size, st.st_mtime_ns]
        return ident
    if isinstance(source, SynthSource):
        return {"synth": [cfg.synth_style, cfg.synth_n, cfg.synth_seed]}
    raise UsageError(f"cannot cache a source of type {type(source).__name__}")


class CachedSource:
    """A source whose items are pre-processed once into a uint8 [n, H, W, 3] memmap under `cache_dir`.

    Pre-processing a 1024x768 photo (decode, crop, CLAHE) costs more than a small model's training step
    on 2 cores; images are the same every epoch and fold, only the augmentation after it changes.
    The file name carries a hash of the source (CSV path, size, mtime) and the pre-processing, so a
    changed dataset or setting builds a new file. Memmaps are shared by DataLoader worker processes.
    With `workers` > 1 the build runs that many threads: OpenCV and ONNX Runtime release the GIL, so a
    many-core GPU machine does not wait minutes on one core; each image's result is the same either way.

    Args:
        source: an ImageFolderSource or SynthSource.
        preprocess: the `(img, geometry) -> img` hook.
        size_hw: model input (height, width).
        cache_dir: folder for the cache files.
        key: `preprocess_key(cfg)`.
        progress: show a progress bar while building.
        workers: threads for the build (0 or 1: the calling thread only).
    """

    preprocessed = True

    def __init__(
        self,
        source: Any,
        preprocess: Preprocess,
        size_hw: tuple[int, int],
        cache_dir: str | Path,
        key: str,
        progress: bool = True,
        workers: int = 0,
    ) -> None:

        self.source, self.labels, self.cfg = source, source.labels, getattr(source, "cfg", None)
        self.findings = getattr(source, "findings", None)
        self.groups = getattr(source, "groups", None)
        if hasattr(source, "images"):
            self.images = source.images  # fold tables and OOF CSVs name the images
        ident = json.dumps({"source": _source_identity(source), "pre": key, "n": len(source)}, sort_keys=True)
        digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
        name = Path(getattr(source, "csv_path", Path("synth"))).parent.name or "source"
        h, w = size_hw
        self.path = Path(cache_dir) / f"{name}-{digest}.u8"
        if not self.path.is_file():
            self._build(preprocess, size_hw, progress, workers)
        expect = len(source) * h * w * 3
        if self.path.stat().st_size != expect:
            raise UsageError(f"cache {self.path} has the wrong size; delete it to rebuild")
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(len(source), h, w, 3))

    def _build(self, preprocess: Preprocess, size_hw: tuple[int, int], progress: bool, workers: int) -> None:

        from tqdm import tqdm

        h, w = size_hw
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        arr = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(self.source), h, w, 3))

        def one(i: int) -> None:
            out = _fit_size(preprocess(*self.source.load(i)), size_hw)
            arr[i] = out if out.ndim == 3 else out[:, :, None]

        items = range(len(self.source))
        bar = tqdm(total=len(self.source), desc=f"cache {self.path.name}", disable=not progress)
        with bar:
            if workers > 1 and len(items):
                one(0)  # first on this thread: lazily opened sessions exist before threads share them
                bar.update()
                with ThreadPoolExecutor(workers) as pool:
                    for _ in pool.map(one, items[1:]):  # map re-raises the first failure
                        bar.update()
            else:
                for i in items:
                    one(i)
                    bar.update()
        arr.flush()
        arr = None  # drops the mapping before the rename
        tmp.replace(self.path)  # atomic: a killed build leaves only a .tmp
        log.info("cached %d pre-processed images in %s", len(self.source), self.path)

    def __len__(self) -> int:
        return len(self.source)

    def load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict | None]:
        """(pre-processed BGR image, None) of item i."""
        return np.array(self.data[i]), None

    def geometry_of(self, i: int) -> dict | None:
        """The source's geometry of item i (lead maps need it after the image is cached)."""
        return _geometry_of(self.source, i)


def _geometry_of(source: Any, i: int) -> dict | None:
    fn = getattr(source, "geometry_of", None)
    return fn(i) if fn is not None else None


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return img


def item_groups(rows: Sequence[dict]) -> np.ndarray | None:
    """The group of each CSV row for grouped folds: its patient where given, else its record where that names
    a real record (the simulator's rows all say "sim"), else the row alone. None when no row has a group."""
    keys = []
    for i, row in enumerate(rows):
        patient = (row.get("patient") or "").strip()
        record = (row.get("record") or "").strip()
        if patient:
            keys.append(f"patient:{patient}")
        elif record and record != "sim" and row.get("source") != "sim":
            keys.append(f"record:{record}")
        else:
            keys.append(f"item:{i}")
    return np.asarray(keys) if any(not k.startswith("item:") for k in keys) else None


class ImageFolderSource:
    """A dataset dir (DIR/labels.csv) or any CSV with an image column and the five label columns.

    Args:
        cfg: where the CSV is and how its columns are named.
    """

    def __init__(self, cfg: DataConfig) -> None:
        path = Path(cfg.path)
        csv_path = path / "labels.csv" if path.is_dir() else path
        if not csv_path.is_file():
            raise UsageError(f"no labels CSV at {csv_path}")
        self.cfg = cfg
        self.csv_path = csv_path
        self.root = Path(cfg.root) if cfg.root else csv_path.parent
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            need = [cfg.image_column, *(cfg.label_columns.get(k, k) for k in LABELS)]
            missing = [c for c in need if c not in cols]
            if missing:
                raise UsageError(
                    f"{csv_path}: missing column(s) {', '.join(missing)} (have {', '.join(cols)})"
                )
            rows = list(reader)
        if not rows:
            raise UsageError(f"{csv_path} lists no images")
        self.images = [r[cfg.image_column] for r in rows]
        self.groups = item_groups(rows)
        try:
            labels = [[int(float(r[cfg.label_columns.get(k, k)])) for k in LABELS] for r in rows]
        except ValueError as err:
            raise UsageError(f"{csv_path}: label columns must hold 0/1 ({err})") from None
        self.labels = np.asarray(labels, dtype=np.float32).reshape(len(rows), len(LABELS))  # [n, 5]
        if not np.isin(self.labels, (0, 1)).all():
            raise UsageError(f"{csv_path}: label columns must hold 0/1")
        # [n, len(FINDINGS)] where the CSV has the simulator's findings column, else None
        self.findings = (
            findings_matrix([r[cfg.findings_column] for r in rows], f"{csv_path}")
            if cfg.findings_column in cols
            else None
        )
        geo_path = Path(cfg.geometry) if cfg.geometry else self.root / "geometry.jsonl"
        self.geometry: dict[str, dict] = {}
        if geo_path.is_file():
            with open(geo_path) as f:
                for line in f:
                    if line.strip():
                        obj = json.loads(line)
                        self.geometry[obj["image"]] = obj
        elif cfg.geometry:
            raise UsageError(f"geometry file {geo_path} not found")

    def __len__(self) -> int:
        return len(self.images)

    def path(self, i: int) -> Path:
        """Absolute path of image i."""
        p = Path(self.images[i])
        return p if p.is_absolute() else self.root / p

    def load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict | None]:
        """(BGR image, geometry or None) of item i."""
        return _read_image(self.path(i)), self.geometry_of(i)

    def geometry_of(self, i: int) -> dict | None:
        """The geometry.jsonl entry of item i, or None."""
        return self.geometry.get(self.images[i])


class SynthSource:
    """Images rendered on the fly by edgeecg.synth: item i is the same image as `edgeecg synth` item i.

    Args:
        cfg: kind=synth config (synth_style, synth_n, synth_seed).
    """

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self._item_rng = item_rng
        self._mix = MIX_WEIGHTS
        self._cache: dict[int, tuple[np.ndarray, dict | None, np.ndarray]] = {}
        # Labels must be known before rendering (for pos_weight and folds): render lazily but label now.
        records = [self._render(i, labels_only=True) for i in range(cfg.synth_n)]
        self.labels = np.stack([r.label_vector() for r in records])  # [n, 5]
        self.findings = findings_matrix([";".join(r.meta.get("subtypes") or ()) for r in records])

    def __len__(self) -> int:
        return self.cfg.synth_n

    def _render(self, i: int, labels_only: bool = False) -> Any:

        rng = self._item_rng(self.cfg.synth_seed, i)
        rng.random()  # the writer's negatives draw: keep the stream aligned with `edgeecg synth` item i
        style = self.cfg.synth_style
        if style == "mix":
            names = list(self._mix)
            style = names[rng.choice(len(names), p=list(self._mix.values()))]
        record = simulate(rng)
        if labels_only:
            return record
        scene = make_scene(record, style, rng)
        geo = scene.geometry.to_json() if scene.geometry is not None else None
        return scene.image, geo

    def load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict | None]:
        """(BGR image, geometry) of item i, rendered now."""
        return self._render(i)


class Subset:
    """A view of some items of a source (e.g. the training folds)."""

    def __init__(self, source: Any, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = source.labels[self.indices]
        found = getattr(source, "findings", None)
        self.findings = None if found is None else found[self.indices]
        groups = getattr(source, "groups", None)
        self.groups = None if groups is None else groups[self.indices]
        self.cfg = getattr(source, "cfg", None)
        self.preprocessed = getattr(source, "preprocessed", False)

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict | None]:
        """Item i of the view."""
        return self.source.load(int(self.indices[i]), rng)

    def geometry_of(self, i: int) -> dict | None:
        """The geometry of item i of the view, or None."""
        return _geometry_of(self.source, int(self.indices[i]))


def make_source(cfg: DataConfig) -> Any:
    """The source a DataConfig describes."""
    if cfg.kind == "dir":
        return ImageFolderSource(cfg)
    if cfg.kind == "synth":
        return SynthSource(cfg)
    raise UsageError(f"unknown source kind {cfg.kind!r} (dir or synth)")


def to_tensor(
    img_bgr: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Any:
    """uint8 HxWx3 BGR -> float32 torch tensor [3, H, W], RGB, normalised with mean/std: the runtime's own
    `to_model_input`, so training and serving cannot normalise apart."""
    torch = require("torch")
    return torch.from_numpy(to_model_input([img_bgr], mean, std, "RGB")[0])


class TrainDataset:
    """Items from several sources, pre-processed, optionally augmented, as (image tensor, label tensor).

    Indexed by `(item, sample_seed)` pairs from `EpochSampler` (or a plain int: seed 0, for evaluation).

    Args:
        sources: the sources, concatenated in order.
        preprocess: `(img_bgr, geometry) -> img_bgr` hook.
        size_hw: model input (height, width); the hook's output is resized to it if needed.
        augment: an Albumentations Compose or None.
        findings: the targets also hold each item's simulator findings after its five labels
            ([5 + len(FINDINGS)]; every source needs them).
        lead_maps: items also carry the lead-map target (`edgeecg.train.leadmaps`), made from the
            ground-truth geometry's lead boxes and the findings: (image, targets, map). Needs `findings`
            and the `warp_clahe` pre-processing (whose warp the boxes follow); an item without lead boxes
            gets an all-zero map.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        preprocess: Preprocess,
        size_hw: tuple[int, int],
        augment: Any | None = None,
        findings: bool = False,
        lead_maps: bool = False,
    ) -> None:
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])
        self.preprocess = preprocess
        self.size_hw = size_hw
        self.augment = augment
        self.labels = np.concatenate([s.labels for s in self.sources]).astype(np.float32)  # [n, 5]
        self.findings = None
        self.targets = self.labels
        if findings:
            if any(getattr(s, "findings", None) is None for s in self.sources):
                raise UsageError(
                    f"{'lead_maps' if lead_maps else 'aux_findings'} needs the simulator's findings in every "
                    "source (the `findings` column that edgeecg synth writes)"
                )
            self.findings = np.concatenate([s.findings for s in self.sources]).astype(np.float32)
            self.targets = np.concatenate([self.labels, self.findings], axis=1)  # [n, 5 + K]
        self.lead_maps = bool(lead_maps)
        if self.lead_maps and self.findings is None:
            raise UsageError("lead_maps needs findings=True (the map's finding channels come from them)")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def item_weights(self, source_weights: Sequence[float]) -> np.ndarray:
        """Per-item sampling weight so source k takes share w_k / sum(w) of the draws."""
        w = np.concatenate(
            [np.full(len(s), float(sw) / len(s)) for s, sw in zip(self.sources, source_weights, strict=True)]
        )
        return w / w.sum()

    def image(self, i: int, seed: int = 0) -> np.ndarray:
        """The pre-processed (and, when training, augmented) BGR image of item i."""
        return self._item(i, seed, with_map=False)[0]

    def _item(self, i: int, seed: int, with_map: bool) -> tuple[np.ndarray, np.ndarray | None]:
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        j = i - int(self.offsets[k])
        img, geo = self.sources[k].load(j)
        out = img if getattr(self.sources[k], "preprocessed", False) else self.preprocess(img, geo)
        out = _fit_size(out, self.size_hw)
        mask = None
        if with_map:
            geo = geo if geo is not None else _geometry_of(self.sources[k], j)
            mask = lead_mask(geo, self.size_hw) if geo is not None else None
            if mask is None:
                mask = np.zeros(self.size_hw, np.uint8)
        if self.augment is not None:
            from edgeecg.train.augment import seed_transform

            seed_transform(self.augment, seed)
            if mask is None:
                out = self.augment(image=out)["image"]
            else:  # the same rotation and perspective move the lead boxes
                done = self.augment(image=out, mask=mask)
                out, mask = done["image"], done["mask"]
        return out, mask

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, ...]:
        torch = require("torch")
        i, seed = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), 0)
        img, mask = self._item(i, seed, with_map=self.lead_maps)
        x, y = to_tensor(img), torch.from_numpy(self.targets[i])
        if mask is None:
            return x, y

        return x, y, torch.from_numpy(map_target(mask, lead_findings(self.findings[i])))


class EpochSampler:
    """Deterministic per-epoch order, optionally weighted and sharded over DDP ranks.

    Yields `(item, sample_seed)`; both are functions of (seed, epoch, position) only.

    Args:
        n: number of items.
        num_samples: draws per epoch (0 = n).
        weights: per-item weights for sampling with replacement, or None for a permutation.
        seed: run seed.
        rank, world: this process's DDP rank and the world size (each rank takes every world-th draw).
        shuffle: False yields items in order (evaluation).
    """

    def __init__(
        self,
        n: int,
        num_samples: int = 0,
        weights: np.ndarray | None = None,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.num_samples = num_samples or n
        self.weights = None if weights is None else np.asarray(weights, np.float64)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order to yield."""
        self.epoch = int(epoch)

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        """(items, sample seeds) of the whole epoch, before sharding."""
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        if not self.shuffle:
            items = np.arange(self.num_samples) % self.n
        elif self.weights is not None:
            items = rng.choice(self.n, size=self.num_samples, replace=True, p=self.weights)
        else:
            reps = -(-self.num_samples // self.n)  # ceil
            items = np.concatenate([rng.permutation(self.n) for _ in range(reps)])[: self.num_samples]
        seeds = rng.integers(0, 2**62, size=self.num_samples)
        if self.world > 1:  # pad so every rank gets the same count
            pad = (-self.num_samples) % self.world
            items, seeds = np.r_[items, items[:pad]], np.r_[seeds, seeds[:pad]]
        return items, seeds

    def __iter__(self):
        items, seeds = self.draws()
        for i, s in zip(items[self.rank :: self.world], seeds[self.rank :: self.world], strict=True):
            yield int(i), int(s)

    def __len__(self) -> int:
        return -(-self.num_samples // self.world)
