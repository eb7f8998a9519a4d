"""The verifier (`edgeecg.preprocess.Verifier`): a tiny CNN trained on pages flattened by the runtime chain.

Positives and negatives come from `edgeecg synth` scenes (null paper_quad = a no-ECG sheet or desk). Every
image goes through the runtime's own pre-processing (detector, corners, warp, CLAHE, never rejecting:
`edgeecg.train.runtime_chain.RuntimeHook`), so the verifier learns on exactly what it sees when served. The
threshold is chosen on a tuning set (a seed of its own): it may reject at most `max_ecg_rejected` of its
ECG images and at least `min_negatives_rejected` of its negatives, cutting across the widest gap between
scores that allows (`choose_threshold`).

Usage::

    edgeecg-train verifier --data build/detector/ft_photo build/detector/ft_scan --tune build/detector/tune \\
        --detector runs/detector_ft/detector.onnx --out runs/verifier

writes OUT/verifier.onnx, OUT/verifier.json (manifest fields) and OUT/weights.safetensors (+ .json sidecar).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.bundle import sha256_file
from edgeecg.errors import UsageError
from edgeecg.io import IMAGE_EXTENSIONS
from edgeecg.preprocess.chain import PreprocessConfig
from edgeecg.preprocess.clahe import apply_clahe
from edgeecg.preprocess.geometry import RESAMPLER, warp_to_size
from edgeecg.sidecar import read_json_object
from edgeecg.synth.artefacts import crumpled_sheet, heavy_wear, weathered
from edgeecg.synth.dataset import parse_size
from edgeecg.train.checkpoint import atomic_write_json
from edgeecg.train.losses import logit
from edgeecg.train.pagemodel import fit_page_model, save_page_model
from edgeecg.train.runtime_chain import RuntimeHook

# Imported inside functions, so they load only when used: optional or heavy libraries (sklearn, torch, tqdm);
# modules that import this one back (edgeecg.train.detector).

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifierConfig:
    """Verifier training settings (saved as OUT/verifier_config.json).

    Attributes:
        data: synth dataset dirs to train on (ECG scenes, e.g. drawn from real records, and no-ECG scenes).
        tune: synth dataset dirs (other seeds, or validation records) for model selection and the threshold.
        photos, tune_photos: folders of real photographs with no ECG (negatives for training / tuning), each
            seen as `crops_per_photo` random crops at random sizes.
        weathered: extra copies of every scene with `edgeecg.synth.artefacts.weathered` paper (other grid
            colours, casts, texture, strong wrinkles and creases, fading), for training and tuning alike.
        worn: extra copies of every scene handled harder (`edgeecg.synth.artefacts.heavy_wear`: folds into
            panels, crumpled texture, a turn with black corners, heavy noise, strong colour temperature: the
            strengths another generator, ecg-image-kit, documents), for training and tuning alike.
        paper_closeups: training negatives of blank sheets, crumpled or folded, filling the frame
            (`edgeecg.synth.artefacts.crumpled_sheet`); a third as many others for tuning.
        scales: every copy is rescaled by a factor drawn log-uniformly from this range before the chain, so
            the verdict cannot depend on the input's resolution.
        limit: at most this many scenes per dir, evenly spaced (0: all).
        detector: the detector ONNX the runtime chain uses (detector.json beside it).
        out: output directory.
        input_size: (h, w): the classifier's input, which is what the verifier sees at run time.
        mode, corners, refine: the runtime pre-processing (the bundle manifest's preprocess section).
        epochs, batch, lr, weight_decay: optimisation (AdamW, cosine schedule).
        max_ecg_rejected: the threshold may reject at most this share of the tuning set's ECG images.
        min_negatives_rejected: ...and at least this share of its negatives, cutting across the widest gap
            between scores that allows (1.0: as many as it can, next to the lowest ECG if need be), so real
            ECGs scoring a little under the synthetic ones keep room; the detector turns away about half the
            negatives before the check.
        cut_rule: "gap" (across the widest score gap that rejects enough negatives) or "lowest" (just above
            the negatives it must reject: the most room for ECGs from generators the tuning set never showed);
            see `choose_threshold`.
        upright: also learn whether a page is the right way up (a second output, on pages flattened with
            the ground-truth corners, half of them turned by 180 degrees); the runtime then turns pages back.
        seed: everything random (init, order, flips).
        threads: torch threads.
    """

    data: tuple[str, ...] = ()
    tune: tuple[str, ...] = ()
    photos: tuple[str, ...] = ()
    tune_photos: tuple[str, ...] = ()
    crops_per_photo: int = 24
    weathered: int = 1
    worn: int = 0
    paper_closeups: int = 0
    scales: tuple[float, float] = (0.35, 1.6)
    limit: int = 0
    detector: str = ""
    out: str = "runs/verifier"
    input_size: tuple[int, int] = (96, 192)
    mode: str = "warp"
    corners: str = "classical"
    refine: bool = True
    epochs: int = 12
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    max_ecg_rejected: float = 0.01
    min_negatives_rejected: float = 0.95
    cut_rule: str = "gap"
    upright: bool = True
    seed: int = 0
    threads: int = 2

    @property
    def tune_closeups(self) -> int:
        """How many paper close-ups the tuning set holds: a third as many as training."""
        return self.paper_closeups // 3

    def __post_init__(self) -> None:
        for name in ("data", "tune", "photos", "tune_photos"):  # one dir given as a plain string
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, (getattr(self, name),))


def build_net(width: int = 16, outputs: int = 1):
    """Four conv-BN-ReLU-pool blocks, global average pool, `outputs` logits (~45 k parameters)."""
    import torch.nn as nn

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)
        )

    w = width
    return nn.Sequential(
        block(3, w),
        block(w, 2 * w),
        block(2 * w, 3 * w),
        block(3 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(4 * w, outputs),
    )


def _rescaled(img: np.ndarray, rng: np.random.Generator, scales: tuple[float, float]) -> np.ndarray:

    s = float(np.exp(rng.uniform(np.log(scales[0]), np.log(scales[1]))))
    if abs(s - 1.0) < 0.02:
        return img
    size = (max(round(img.shape[1] * s), 32), max(round(img.shape[0] * s), 32))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def _spaced(rows: list, limit: int) -> list:
    """At most `limit` of `rows`, evenly spaced (0: all)."""
    if not limit or len(rows) <= limit:
        return rows
    return [rows[int(i)] for i in np.linspace(0, len(rows) - 1, limit).round()]


def _hook(cfg: VerifierConfig):

    return RuntimeHook(
        cfg.detector,
        cfg.input_size,
        mode=cfg.mode,
        corners=cfg.corners,
        refine=cfg.refine,
        threads=cfg.threads,
    )


def _cached(cache: Path, make) -> tuple[np.ndarray, np.ndarray]:
    if cache.is_file():
        z = np.load(cache)
        return z["pages"], z["labels"]
    pages, labels = make()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, pages=pages, labels=labels)
    tmp.replace(cache)
    return pages, labels


def _cache_file(cache_dir: Path, name: str, key: list[Any]) -> Path:
    """Where a page set named `name` is cached: the file name carries a hash of everything it depends on."""
    return cache_dir / f"{name}-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]}.npz"


def _copies_key(cfg: VerifierConfig) -> list[Any]:
    """What besides its source determines a cached page: the chain, the copies, the resampler."""

    return [sha256_file(cfg.detector)[:16], list(cfg.input_size), cfg.mode, cfg.corners, cfg.refine,
            cfg.weathered, list(cfg.scales), cfg.seed, RESAMPLER]  # fmt: skip


def _labelled_pages(
    cfg: VerifierConfig,
    scene_dirs: tuple[str, ...],
    photo_dirs: tuple[str, ...],
    cache: Path,
    closeups: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The pages and labels of scene dirs and no-ECG photo folders together (each cached)."""
    parts = [page_set(cfg, d, cache) for d in scene_dirs]
    if cfg.worn:
        parts += [worn_set(cfg, d, cache) for d in scene_dirs]
    parts += [photo_set(cfg, d, cache) for d in photo_dirs]
    if closeups:
        parts.append(closeup_set(cfg, closeups, cache))
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _cut(cfg: VerifierConfig, pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    """`choose_threshold` by `cfg`'s rule, plus the margin: how far (logit) the lowest ECG sits above it."""
    cal = choose_threshold(
        pos, neg, cfg.max_ecg_rejected, min_neg_rejected=cfg.min_negatives_rejected, cut_rule=cfg.cut_rule
    )
    return {**cal, "margin": float(logit(pos.min()) - logit(cal["threshold"]))}


def _scene_pages(
    cfg: VerifierConfig, data_dir: str | Path, cache_dir: Path, kind: str, n: int, copy
) -> tuple[np.ndarray, np.ndarray]:
    """`n` copies of every scene (`copy(img, rng, c)`), each rescaled by a random factor from `cfg.scales`,
    through the runtime chain, cached under `kind`; the randomness is fixed by the seed, the dir's name, the
    row and the copy."""
    from tqdm import tqdm

    from edgeecg.train.detector import scene_image, scene_rows

    data_dir = Path(data_dir)
    rows = _spaced(scene_rows(data_dir), cfg.limit)
    geo = data_dir / "geometry.jsonl"
    extra = [kind, n] if kind else []  # the plain pages keep the key they were first cached under
    key = [str(data_dir.resolve()), geo.stat().st_mtime_ns, len(rows), *extra, *_copies_key(cfg)]
    cache = _cache_file(cache_dir, f"{data_dir.name}-{kind}" if kind else data_dir.name, key)
    tag = int(hashlib.sha256(data_dir.name.encode()).hexdigest()[:8], 16)

    def make() -> tuple[np.ndarray, np.ndarray]:
        hook = _hook(cfg)
        h, w = cfg.input_size
        pages = np.zeros((len(rows) * n, h, w, 3), np.uint8)
        labels = np.zeros(len(rows) * n, np.float32)
        for i, row in enumerate(
            tqdm(rows, desc=f"{kind or 'pages'} {data_dir.name}", unit="img", disable=None)
        ):
            img = scene_image(data_dir, row)
            for c in range(n):
                rng = np.random.default_rng([cfg.seed, tag, i, c, *([11] if kind else [])])
                pages[i * n + c] = hook(_rescaled(copy(img, rng, c), rng, cfg.scales))
                labels[i * n + c] = row.get("paper_quad") is not None
        return pages, labels

    return _cached(cache, make)


def page_set(cfg: VerifierConfig, data_dir: str | Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pages uint8 [N, H, W, 3] BGR, labels float32 [N]: 1 = ECG) through the runtime chain, cached: every
    scene once as drawn and `cfg.weathered` times with weathered paper."""
    return _scene_pages(
        cfg, data_dir, cache_dir, "", 1 + cfg.weathered, lambda img, rng, c: weathered(img, rng) if c else img
    )


def worn_set(cfg: VerifierConfig, data_dir: str | Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """`cfg.worn` heavily handled copies of every scene (`heavy_wear`), cached on their own, so adding them
    leaves `page_set`'s cache valid."""
    return _scene_pages(cfg, data_dir, cache_dir, "worn", cfg.worn, lambda img, rng, c: heavy_wear(img, rng))


def closeup_set(cfg: VerifierConfig, n: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """`n` close-ups of blank crumpled sheets (negatives) at random sizes and frame shapes, through the
    chain, cached; `n` also picks the stream, so the training and tuning sets differ."""
    from tqdm import tqdm

    cache = _cache_file(cache_dir, f"closeups-{n}", ["closeups", n, *_copies_key(cfg)])

    def make() -> tuple[np.ndarray, np.ndarray]:
        hook = _hook(cfg)
        h, w = cfg.input_size
        pages = np.zeros((n, h, w, 3), np.uint8)
        for i in tqdm(range(n), desc="paper close-ups", unit="img", disable=None):
            rng = np.random.default_rng([cfg.seed, n, i, 13])
            longest = rng.uniform(300, 2400)
            aspect = float(np.exp(rng.uniform(np.log(0.75), np.log(2.0))))
            size = (int(longest / max(aspect, 1.0)), int(longest * min(aspect, 1.0)))  # (h, w)
            pages[i] = hook(crumpled_sheet((max(size[0], 64), max(size[1], 64)), rng))
        return pages, np.zeros(n, np.float32)

    return _cached(cache, make)


def photo_set(cfg: VerifierConfig, folder: str | Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Real no-ECG photos as negatives: `cfg.crops_per_photo` random crops of each (any aspect from 3:4 to
    2.6:1, a third to all of the photo), at a random size, a third of them weathered; through the chain."""
    from tqdm import tqdm

    folder = Path(folder)
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UsageError(f"{folder}: no photos (image files)")
    key = [str(folder.resolve()), [f.name for f in files], cfg.crops_per_photo, *_copies_key(cfg)]
    cache = _cache_file(cache_dir, f"photos-{folder.name}", key)

    def make() -> tuple[np.ndarray, np.ndarray]:
        hook = _hook(cfg)
        h, w = cfg.input_size
        pages = np.zeros((len(files) * cfg.crops_per_photo, h, w, 3), np.uint8)
        for j, f in enumerate(tqdm(files, desc=f"photos {folder.name}", unit="photo", disable=None)):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise UsageError(f"cannot read {f}")
            H, W = img.shape[:2]
            for c in range(cfg.crops_per_photo):
                rng = np.random.default_rng([cfg.seed, j, c, 7])
                area = rng.uniform(0.33, 1.0) * H * W
                aspect = float(np.exp(rng.uniform(np.log(0.75), np.log(2.6))))
                cw, ch = min(W, int(np.sqrt(area * aspect))), min(H, int(np.sqrt(area / aspect)))
                x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
                crop = img[y0 : y0 + ch, x0 : x0 + cw]
                if rng.random() < 0.33:
                    crop = weathered(crop, rng)
                longest = rng.uniform(300, 2400)
                s = longest / max(crop.shape[:2])
                crop = cv2.resize(
                    crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
                )
                pages[j * cfg.crops_per_photo + c] = hook(crop)
        return pages, np.zeros(len(pages), np.float32)

    return _cached(cache, make)


def upright_pages(cfg: VerifierConfig, data_dir: str | Path, cache_dir: Path) -> np.ndarray:
    """The ECG scenes' pages flattened with their ground-truth corners (so the right way up) and CLAHE'd as
    the runtime does: what the upright output learns from (uint8 [M, H, W, 3] BGR), cached."""
    from tqdm import tqdm

    from edgeecg.train.detector import scene_image, scene_rows

    data_dir = Path(data_dir)
    rows = _spaced([r for r in scene_rows(data_dir) if r.get("paper_quad") is not None], cfg.limit)
    geo = data_dir / "geometry.jsonl"
    key = [str(data_dir.resolve()), geo.stat().st_mtime_ns, len(rows), list(cfg.input_size), RESAMPLER]
    cache = _cache_file(cache_dir, f"{data_dir.name}-upright", key)

    def make() -> tuple[np.ndarray, np.ndarray]:
        pre = PreprocessConfig()
        h, w = cfg.input_size
        pages = np.zeros((len(rows), h, w, 3), np.uint8)
        for i, row in enumerate(tqdm(rows, desc=f"upright pages {data_dir.name}", unit="img", disable=None)):
            quad = np.asarray(row["paper_quad"], np.float32)  # clockwise from the paper's own top-left
            page, _ = warp_to_size(scene_image(data_dir, row), quad, (h, w))
            pages[i] = apply_clahe(page, pre.clahe_clip, pre.clahe_tiles, pre.clahe_space)
        return pages, np.ones(len(rows), np.float32)  # every page here is upright

    return _cached(cache, make)[0]


def choose_threshold(
    pos: np.ndarray,
    neg: np.ndarray,
    max_pos_rejected: float,
    lo: float = 0.0,
    hi: float = 0.99,
    min_neg_rejected: float | None = None,
    cut_rule: str = "gap",
) -> dict[str, float]:
    """A score threshold that keeps positives (ECGs) and rejects negatives.

    At most `max_pos_rejected` of `pos` may fall below it. Under that rule:
    - `min_neg_rejected` None: it rejects as many negatives as it can, then as few positives as it must;
    - `min_neg_rejected` r: of the cuts that reject at least the share r of the negatives, the one across
      the widest gap (in logit space) between neighbouring scores wins, so a score a little outside the
      tuning set's range (another printer, another camera) stays on its side; when r cannot be met without
      losing positives, it falls back to the rule above.
    - `cut_rule` "lowest" (with `min_neg_rejected` r): the lowest cut that rejects the share r of the negatives,
      just above the negative that makes up r: it leaves ECGs from printers, papers and cameras the tuning
      set never showed (which score lower than the tuning ECGs) the most room; when that loses more
      positives than allowed, the rules above decide.
    The threshold sits halfway (in logit space) across the gap it cuts. Clipped to [lo, hi].

    Returns:
        threshold, and the shares of `pos` and `neg` it rejects.
    """
    pos, neg = np.sort(np.asarray(pos, np.float64)), np.sort(np.asarray(neg, np.float64))
    if not len(pos):
        raise UsageError("choosing a threshold needs positive (ECG) examples")
    top = pos[int(np.floor(max_pos_rejected * len(pos)))]  # the lowest score that must stay accepted
    below = neg[neg < top]
    cut = None  # (highest rejected score, lowest kept score)
    # how many negatives the cut must reject (0: no such rule, or no negatives)
    need = 0 if min_neg_rejected is None else int(np.ceil(min_neg_rejected * len(neg) - 1e-9))
    if cut_rule == "lowest" and 0 < need <= len(neg):
        a = neg[need - 1]  # the highest negative that must be rejected
        higher = np.concatenate([pos, neg])
        higher = higher[higher > a]
        if higher.size and (pos <= a).mean() <= max_pos_rejected:
            cut = (float(a), float(higher.min()))
    if cut is None and 0 < need <= below.size:
        scores = np.unique(np.concatenate([pos, neg]))
        a, b = scores[:-1], scores[1:]  # every cut between neighbouring scores...
        enough = np.searchsorted(neg, a, side="right") >= need
        gap = logit(b) - logit(a)
        # ...that the rules allow: losing no ECG if that can be done, else no more than allowed
        for ok in (enough & (b <= pos[0]), enough & (b <= top)):
            if ok.any():
                i = int(np.argmax(np.where(ok, gap, -np.inf)))
                cut = (a[i], b[i])
                break
    if cut is None and below.size:
        # reject every negative under `top`, then keep every positive above the highest of them
        cut = (below[-1], pos[pos > below[-1]][0])
    if cut is not None:
        thr = float(1 / (1 + np.exp(-(logit(cut[0]) + logit(cut[1])) / 2)))
    else:
        thr = float(pos[0] - 1e-6)
    thr = float(np.clip(thr, lo, hi))
    return {
        "threshold": thr,
        "ecg_rejected": float((pos < thr).mean()),
        "negatives_rejected": float((neg < thr).mean()) if len(neg) else float("nan"),
    }


def _probs(net, pages: np.ndarray, batch: int = 256, column: int = 0) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(pages), batch):
            x = torch.from_numpy(pages[i : i + batch]).permute(0, 3, 1, 2).float() / 255.0  # NHWC -> NCHW
            out.append(torch.sigmoid(net(x)[:, column]).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def upright_accuracy(net, pages: np.ndarray) -> float:
    """Share of right-way-up pages, and of the same pages turned by 180 degrees, told correctly."""
    if not len(pages):
        return float("nan")
    up = _probs(net, pages, column=1)
    down = _probs(net, np.ascontiguousarray(pages[:, ::-1, ::-1]), column=1)
    return float(((up > 0.5).mean() + (down < 0.5).mean()) / 2)


def train(cfg: VerifierConfig) -> dict[str, Any]:
    """Train, select on the tuning set, export ONNX and write the manifest fields; returns the summary."""
    import torch
    from sklearn.metrics import roc_auc_score

    if not cfg.data or not cfg.tune or not cfg.detector:
        raise UsageError("verifier training needs --data, --tune and --detector")
    if not Path(cfg.detector).is_file():
        raise UsageError(f"--detector {cfg.detector}: no such file")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "verifier_config.json", asdict(cfg))
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    cache = out / "cache"
    x_tr, y_tr = _labelled_pages(cfg, cfg.data, cfg.photos, cache, cfg.paper_closeups)
    x_tu, y_tu = _labelled_pages(cfg, cfg.tune, cfg.tune_photos, cache, cfg.tune_closeups)
    for name, y in (("training", y_tr), ("tuning", y_tu)):
        if y.min() == y.max():
            raise UsageError(f"the {name} data needs ECG images and no-ECG negatives (synth --negatives)")
    up_tr = up_tu = None
    if cfg.upright:
        up_tr = np.concatenate([upright_pages(cfg, d, cache) for d in cfg.data])
        up_tu = np.concatenate([upright_pages(cfg, d, cache) for d in cfg.tune])
    net = build_net(outputs=2 if cfg.upright else 1)
    yt = torch.from_numpy(y_tr)

    def batch_loss(xb: Any, idx: Any, gen: Any) -> Any:
        if torch.rand(1, generator=gen).item() < 0.5:  # a page upside down is still (not) an ECG
            xb = xb.flip(2).flip(3)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb)[:, 0], yt[idx])
        if up_tr is not None:
            j = torch.randint(len(up_tr), (len(idx),), generator=gen).numpy()
            xu = torch.from_numpy(up_tr[j]).permute(0, 3, 1, 2).float() / 255.0
            turn = torch.rand(len(j), generator=gen) < 0.5
            xu = torch.where(turn[:, None, None, None], xu.flip(2).flip(3), xu)
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(net(xu)[:, 1], (~turn).float())
        return loss

    def evaluate(net: Any, epoch: int) -> tuple[dict[str, Any], tuple[float, float, float]]:
        p = _probs(net, x_tu)
        pos, neg = p[y_tu == 1], p[y_tu == 0]
        row = {"epoch": epoch, "auroc": float(roc_auc_score(y_tu, p)), **_cut(cfg, pos, neg)}
        if up_tu is not None:
            row["upright_accuracy"] = upright_accuracy(net, up_tu)
        rank = (
            row["negatives_rejected"] - row["ecg_rejected"],
            round(row["auroc"], 4) + round(row.get("upright_accuracy", 0.0), 3),
            row["margin"],
        )
        return row, rank

    t0 = time.perf_counter()
    best, history = fit_page_model(
        net, x_tr, lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, batch=cfg.batch,
        seed=cfg.seed, batch_loss=batch_loss, evaluate=evaluate, desc="verifier",
    )  # fmt: skip
    h, w = cfg.input_size
    fields = {
        "kind": "ecg-verifier",
        "input_size": [h, w],
        "input": "page",
        "channel_order": "BGR",
        "scale": 255.0,
        "threshold": round(best["threshold"], 6),
        "outputs": ["ecg", "upright"] if cfg.upright else ["ecg"],
        "calibration": {
            **_calibration(cfg, best),
            **({"upright_accuracy": best["upright_accuracy"]} if cfg.upright else {}),
            "epoch": best["epoch"],
        },
        "preprocess": {"mode": cfg.mode, "corners": cfg.corners, "refine": cfg.refine},
    }
    meta = {"labels": fields["outputs"], "num_classes": len(fields["outputs"]), "history": history}
    fields = save_page_model(net, out, "verifier", fields, x_tu[:16], "logit", "verifier", meta)
    log.info("verifier trained in %.0f s", time.perf_counter() - t0)
    return {**fields, "history": history}


def calibrate(cfg: VerifierConfig) -> dict[str, Any]:
    """Choose the threshold of a verifier already trained in `cfg.out` (its verifier.onnx) again, on the
    tuning sets and photos of `cfg`, by `cfg`'s rule; rewrites OUT/verifier.json (threshold, calibration) and
    returns its fields. The weights and the ONNX file stay as they are."""
    from sklearn.metrics import roc_auc_score

    out = Path(cfg.out)
    fields_path = out / "verifier.json"
    if not (out / "verifier.onnx").is_file() or not fields_path.is_file():
        raise UsageError(f"{out} holds no trained verifier (verifier.onnx and verifier.json)")
    if not cfg.tune:
        raise UsageError("calibration needs --tune")
    fields = read_json_object(fields_path, UsageError)
    if [int(v) for v in fields["input_size"]] != list(cfg.input_size):
        raise UsageError(f"--input-size {cfg.input_size} differs from the check's own {fields['input_size']}")
    x, y = _labelled_pages(cfg, cfg.tune, cfg.tune_photos, out / "cache", cfg.tune_closeups)
    with OnnxRuntimeRunner(out / "verifier.onnx", threads=cfg.threads) as runner:
        logits = []
        for i in range(0, len(x), 64):
            xb = np.ascontiguousarray(x[i : i + 64].transpose(0, 3, 1, 2), np.float32) / np.float32(255.0)
            logits.append(np.asarray(next(iter(runner.infer(xb).values())), np.float64).reshape(len(xb), -1))
    p = 1.0 / (1.0 + np.exp(-np.concatenate(logits)[:, 0]))
    row = {**_cut(cfg, p[y == 1], p[y == 0]), "auroc": float(roc_auc_score(y, p))}
    fields["threshold"] = round(row["threshold"], 6)
    fields["calibration"] = {**fields.get("calibration", {}), **_calibration(cfg, row)}
    atomic_write_json(fields_path, fields)
    return fields


def _calibration(cfg: VerifierConfig, row: dict[str, Any]) -> dict[str, Any]:
    """The manifest's calibration fields of a threshold `row` (threshold, shares rejected, margin, AUROC)."""
    return {
        "data": list(cfg.tune) + list(cfg.tune_photos),
        "copies": {"weathered": cfg.weathered, "worn": cfg.worn, "scales": list(cfg.scales)},
        "paper_closeups": cfg.tune_closeups,
        "max_ecg_rejected": cfg.max_ecg_rejected,
        "min_negatives_rejected": cfg.min_negatives_rejected,
        "cut_rule": cfg.cut_rule,
        "ecg_rejected": row["ecg_rejected"],
        "negatives_rejected": row["negatives_rejected"],
        "margin_logit": round(row["margin"], 4),
        "auroc": row["auroc"],
    }


def _parse_scales(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        raise UsageError(f"--scales wants LO-HI, e.g. 0.35-1.6, got {text!r}") from None
    if not 0 < lo <= hi:
        raise UsageError(f"--scales needs 0 < LO <= HI, got {text!r}")
    return lo, hi


def main_verifier(argv: list[str] | None = None) -> int:
    """`edgeecg-train verifier ...`."""
    d = VerifierConfig()
    p = argparse.ArgumentParser(prog="edgeecg-train verifier", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=[], help="synth dataset dirs with negatives to train on")
    p.add_argument(
        "--tune",
        nargs="+",
        required=True,
        help="synth dataset dirs (other seeds) for selection and threshold",
    )
    p.add_argument(
        "--photos", nargs="+", default=[], help="folders of real no-ECG photos: training negatives"
    )
    p.add_argument("--tune-photos", nargs="+", default=[], help="folders of real no-ECG photos for tuning")
    p.add_argument(
        "--weathered",
        type=int,
        default=d.weathered,
        help=f"weathered copies per scene (default {d.weathered})",
    )
    p.add_argument(
        "--paper-closeups",
        type=int,
        default=d.paper_closeups,
        help="negatives of blank crumpled sheets filling the frame, for training (a third as many tune)",
    )
    p.add_argument(
        "--worn",
        type=int,
        default=d.worn,
        help=f"heavily handled copies per scene: folds, crumples, turns, heavy noise (default {d.worn})",
    )
    p.add_argument(
        "--scales",
        default=f"{d.scales[0]}-{d.scales[1]}",
        help="range of the random rescale applied to every copy before the chain (default %(default)s)",
    )
    p.add_argument("--limit", type=int, default=d.limit, help="at most this many scenes per dir (0: all)")
    p.add_argument("--detector", required=True, help="the detector ONNX the runtime chain uses")
    p.add_argument("--out", default=d.out, help=f"output dir (default {d.out})")
    p.add_argument(
        "--input-size",
        default="96x192",
        help="HxW of the pages the verifier sees (the runtime makes its page at this size, whatever the classifier's)",
    )
    p.add_argument("--mode", default=d.mode, choices=("crop", "warp", "none"), help="runtime mode")
    p.add_argument("--corners", default=d.corners, choices=("keypoints", "classical"), help="warp corners")
    p.add_argument(
        "--refine", action=argparse.BooleanOptionalAction, default=d.refine, help="corner refinement"
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument(
        "--max-ecg-rejected", type=float, default=d.max_ecg_rejected, help="threshold rule (default 0.01)"
    )
    p.add_argument(
        "--upright",
        action=argparse.BooleanOptionalAction,
        default=d.upright,
        help="also learn whether a page is the right way up (the runtime turns upside-down pages back)",
    )
    p.add_argument(
        "--min-negatives-rejected",
        type=float,
        default=d.min_negatives_rejected,
        help=f"threshold rule: reject at least this share of the tuning negatives, across the widest score gap; "
        f"1 = as many as it can "
        f"(default {d.min_negatives_rejected})",
    )
    p.add_argument(
        "--cut",
        default=d.cut_rule,
        choices=("gap", "lowest"),
        help="threshold rule: across the widest score gap, or just above the negatives it must reject "
        "(the most room for ECGs from other generators)",
    )
    p.add_argument(
        "--calibrate-only",
        action="store_true",
        help="keep the check trained in --out and only choose its threshold again on --tune / --tune-photos",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed")
    args = p.parse_args(argv)
    h, w = parse_size(args.input_size, "--input-size", "96x192")
    cfg = VerifierConfig(
        data=tuple(args.data), tune=tuple(args.tune), photos=tuple(args.photos),
        tune_photos=tuple(args.tune_photos), weathered=args.weathered, worn=args.worn,
        paper_closeups=args.paper_closeups, scales=_parse_scales(args.scales),
        limit=args.limit, detector=args.detector, out=args.out, input_size=(h, w),
        mode=args.mode, corners=args.corners, refine=args.refine, epochs=args.epochs,
        max_ecg_rejected=args.max_ecg_rejected, min_negatives_rejected=args.min_negatives_rejected,
        upright=args.upright, seed=args.seed, cut_rule=args.cut,
    )  # fmt: skip
    if args.calibrate_only:
        res = calibrate(cfg)
        cal = res["calibration"]
        print(
            f"verifier: {Path(cfg.out) / 'verifier.json'}; threshold {res['threshold']:.4f} rejects "
            f"{cal['ecg_rejected']:.1%} of the tuning ECGs and {cal['negatives_rejected']:.1%} of its negatives"
        )
        return 0
    res = train(cfg)
    cal = res["calibration"]
    print(
        f"verifier: {Path(cfg.out) / 'verifier.onnx'}; threshold {res['threshold']:.3f} rejects "
        f"{cal['ecg_rejected']:.1%} of the tuning ECGs and {cal['negatives_rejected']:.1%} of its negatives "
        f"(AUROC {cal['auroc']:.4f}, epoch {cal['epoch']})"
    )
    return 0
