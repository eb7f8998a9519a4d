"""Write synthetic datasets: the directory format of docs/design.md section 2 plus YOLO pose labels.

Layout of DIR::

    labels.csv        image,MI,AF,HYP,CD,STTC,NORM,record,patient,fold,source,style,findings (ECG images only;
                      patient and fold where the records' source gives them)
    images/NNNNNN.jpg every image, negatives included
    geometry.jsonl    one object per image: {"image", "paper_quad" (null for negatives), "paper_box", "lead_boxes"}
    labels/NNNNNN.txt YOLO pose label per image: "0 cx cy w h x1 y1 v1 ... x4 y4 v4" (normalised; empty for
                      negatives). Corners run clockwise from the paper's top-left.
    data.yaml         ultralytics dataset file (one class "ecg", kpt_shape [4, 3])
    synth.json        the resolved settings and the edgeecg version that made the set

Item i draws everything from its own generator seeded by (seed, i), so the output is byte-identical for
a seed whatever the number of workers. With `per_record` K, item i renders record i // K of the selected
records (each exactly K times, in different scenes) instead of a record drawn at random.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edgeecg import LABELS, __version__
from edgeecg.errors import InputError, UsageError
from edgeecg.synth.artefacts import heavy_wear, weathered
from edgeecg.synth.ecgrecord import ECGRecord
from edgeecg.synth.real_records import RecordEntry, load_record, record_index, select_records
from edgeecg.synth.render import RenderConfig
from edgeecg.synth.scenes import Scene, make_scene
from edgeecg.synth.waveforms import simulate

# Imported inside functions, so they load only when used: optional or heavy libraries (tqdm).

log = logging.getLogger(__name__)

STYLES = ("clean", "scan", "photo", "mix")
#: How `mix` chooses a style per image.
MIX_WEIGHTS = {"clean": 0.2, "scan": 0.35, "photo": 0.45}
#: Corners in order: top-left, top-right, bottom-right, bottom-left; a horizontal flip swaps left and right.
FLIP_IDX = [1, 0, 3, 2]


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one `edgeecg synth` run.

    Attributes:
        out: output directory.
        n: number of images (negatives included).
        seed: master seed; item i uses the generator seeded by (seed, i).
        style: clean, scan, photo or mix.
        size: output (width, height) in pixels, or None for each style's natural size.
        negatives: fraction of images that show no ECG (detector negatives).
        records: a directory of WFDB records to render instead of simulated signals.
        workers: parallel worker processes.
        jpeg_quality: quality of the stored JPEG images.
        aspect: (lo, hi) range of frame shapes (width / height): each scene's frame keeps the area of
            `size` with a shape drawn from it (real scans come 2:1 and wider, phone photos 16:9 or
            portrait). None: every scene at `size`.
        bare: fraction of ECG pages printed with neither header nor calibration pulse (a scan cropped to
            the grid, a machine that prints neither).
        varied: fraction of ECG pages laid out as other printers and generators lay them out
            (`RenderConfig.varied`: grid to the sheet's edges, rows packed anywhere, other baselines, lead
            names under the trace).
        weathered: fraction of images on worn or unusual paper (`edgeecg.synth.artefacts.weathered`).
        worn: fraction of images handled hard (`edgeecg.synth.artefacts.heavy_wear`, without its turn).
        labels: the records' labels: PTB-XL's ptbxl_database.csv or a CSV of record and the five columns
            (default: PTB-XL's CSVs in `records`, else each header's `# Dx:`).
        folds: render only the records of these folds (PTB-XL's strat_fold, or the labels CSV's fold).
        record_list: a text file of record ids (or file stems), one a line: render only those.
        per_record: render every selected record this many times (n is then records x per_record).
    """

    out: str
    n: int
    seed: int = 0
    style: str = "mix"
    size: tuple[int, int] | None = None
    negatives: float = 0.0
    records: str | None = None
    workers: int = 1
    jpeg_quality: int = 92
    aspect: tuple[float, float] | None = None
    bare: float = 0.0
    varied: float = 0.0
    weathered: float = 0.0
    worn: float = 0.0
    labels: str | None = None
    folds: tuple[int, ...] | None = None
    record_list: str | None = None
    per_record: int | None = None

    def check(self) -> None:
        """Raise UsageError for settings that cannot work."""
        if self.n < 1:
            raise UsageError(f"--n must be at least 1, got {self.n}")
        if self.style not in STYLES:
            raise UsageError(f"--style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.size is not None and (min(self.size) < 64 or max(self.size) > 8192):
            raise UsageError(f"--size must be between 64 and 8192 pixels a side, got {self.size}")
        if not 0.0 <= self.negatives <= 1.0:
            raise UsageError(f"--negatives must be a fraction in [0, 1], got {self.negatives}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UsageError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")
        if self.aspect is not None:
            lo, hi = self.aspect
            if self.size is None:
                raise UsageError("--aspect needs --size (the area each frame keeps)")
            if not 0.25 <= lo <= hi <= 4.0:
                raise UsageError(f"--aspect must be LO-HI with 0.25 <= LO <= HI <= 4, got {lo}-{hi}")
        if not 0.0 <= self.bare <= 1.0:
            raise UsageError(f"--bare-pages must be a fraction in [0, 1], got {self.bare}")
        if not 0.0 <= self.varied <= 1.0:
            raise UsageError(f"--varied-layout must be a fraction in [0, 1], got {self.varied}")
        if not 0.0 <= self.weathered <= 1.0:
            raise UsageError(f"--weathered must be a fraction in [0, 1], got {self.weathered}")
        if not 0.0 <= self.worn <= 1.0:
            raise UsageError(f"--worn must be a fraction in [0, 1], got {self.worn}")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.records is not None and not Path(self.records).is_dir():
            raise UsageError(f"--records {self.records} is not a directory")
        needs_records = {
            "--labels": self.labels,
            "--folds": self.folds,
            "--record-list": self.record_list,
            "--per-record": self.per_record,
        }
        for option, value in needs_records.items():
            if value is not None and self.records is None:
                raise UsageError(f"{option} selects or labels real records: give --records DIR too")
        if self.per_record is not None:
            if self.per_record < 1:
                raise UsageError(f"--per-record must be at least 1, got {self.per_record}")
            if self.negatives > 0:
                raise UsageError(
                    "--per-record renders records only: draw no-ECG scenes in a set of their own"
                )


def parse_size(text: str, option: str = "--size", example: str = "1024x768") -> tuple[int, int]:
    """'1024x768' -> (1024, 768): the two numbers in the order written (WxH or HxW, as `option` takes them)."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{option} must look like {example}, got {text!r}") from None
    return a, b


def parse_aspect(text: str) -> tuple[float, float]:
    """'1.2-2.6' -> (1.2, 2.6); a single number is a fixed shape."""
    try:
        parts = [float(v) for v in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise UsageError(f"--aspect must look like 1.2-2.6 (width / height), got {text!r}")
    return parts[0], parts[-1]


def frame_size(size: tuple[int, int], aspect: float) -> tuple[int, int]:
    """(W, H) with the area of `size` and W / H = aspect."""
    area = float(size[0]) * float(size[1])
    return max(16, round((area * aspect) ** 0.5)), max(16, round((area / aspect) ** 0.5))


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of item `index`: independent of how items are split among workers."""
    return np.random.default_rng([seed, index])


def _yolo_line(quad: np.ndarray, width: int, height: int) -> str:
    """One YOLO pose label line from a paper quadrilateral (corners may lie outside the image)."""
    x0, y0 = np.clip(quad.min(axis=0), 0, [width, height])
    x1, y1 = np.clip(quad.max(axis=0), 0, [width, height])
    vals = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
    for x, y in quad:
        inside = 0 <= x < width and 0 <= y < height
        vals += [x / width, y / height, 2] if inside else [0.0, 0.0, 0]
    return "0 " + " ".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in vals)


class _Worker:
    """Makes and stores item i. Picklable, so it runs the same in one process or in a pool."""

    def __init__(self, cfg: SynthConfig, entries: list[RecordEntry]) -> None:
        self.cfg = cfg
        self.entries = entries
        # Decoded records by path: with --per-record a worker renders the same record several times in a row.
        self._decoded: OrderedDict[str, ECGRecord] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"cfg": self.cfg, "entries": self.entries}  # each process decodes into its own cache

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["cfg"], state["entries"])

    def _load(self, entry: RecordEntry) -> ECGRecord:

        record = self._decoded.get(entry.path)
        if record is None:
            record = load_record(entry.path, labels=entry.labels)
            self._decoded[entry.path] = record
            if len(self._decoded) > 16:
                self._decoded.popitem(last=False)
        return record

    def __call__(self, index: int) -> dict:

        cfg = self.cfg
        rng = item_rng(cfg.seed, index)
        # The draws from `rng` keep this order (negative, style, record, render, scene): a seed's set stays
        # byte-identical.
        negative = rng.random() < cfg.negatives
        style = self._style(rng)
        record, entry = (None, None) if negative else self._record(index, rng)
        size, render = self._frame(index, record, rng)
        scene = make_scene(record, "negative" if negative else style, rng, size=size, render=render)
        image = self._weathered(index, scene.image)
        geometry = self._store(index, image, scene)
        row = None if record is None else _label_row(geometry["image"], record, entry, style)
        return {"row": row, "geometry": geometry}

    def _style(self, rng: np.random.Generator) -> str:
        """The configured style, or with `mix` one drawn by MIX_WEIGHTS."""
        if self.cfg.style != "mix":
            return self.cfg.style
        styles = list(MIX_WEIGHTS)
        return styles[rng.choice(len(styles), p=list(MIX_WEIGHTS.values()))]

    def _record(self, index: int, rng: np.random.Generator) -> tuple[ECGRecord, RecordEntry | None]:
        """The item's record and its entry: a real one (the index's with `per_record`, else one drawn),
        or simulated (entry None) without records or where a drawn one is unusable."""

        cfg = self.cfg
        record = entry = None
        if self.entries:
            if cfg.per_record:
                entry = self.entries[index // cfg.per_record]
            else:
                entry = self.entries[rng.integers(len(self.entries))]
            try:
                record = self._load(entry)
            except Exception as err:
                if cfg.per_record:  # the set promises every record K times: say which one failed
                    raise InputError(f"record {entry.path} unusable: {err}") from None
                # one bad record must not stop a random draw; fall back to the simulator
                log.warning("record %s unusable (%s); simulating instead", entry.path, err)
                entry = None
        if record is None:
            record = simulate(rng)
        return record, entry

    def _frame(
        self, index: int, record: ECGRecord | None, rng: np.random.Generator
    ) -> tuple[tuple[int, int] | None, RenderConfig | None]:
        """(frame size, RenderConfig or None): the scene's size with `aspect`, and how this page is printed
        where it is bare or laid out another way (None: as make_scene draws it)."""
        cfg = self.cfg
        # Frame shape and bare pages draw from a stream of their own: without them a set is byte-identical
        # to one written before they existed.
        aux = np.random.default_rng([cfg.seed, index, 1])
        size = cfg.size
        if cfg.aspect is not None and size is not None:
            lo, hi = cfg.aspect
            size = frame_size(size, float(np.exp(aux.uniform(np.log(lo), np.log(hi)))))
        render = None
        if record is not None and cfg.bare > 0 and aux.random() < cfg.bare:
            # drawn from rng exactly as make_scene would, so only these two settings change
            render = replace(RenderConfig.random(rng), header=False, calibration=False)
        if record is not None and cfg.varied > 0:
            vr = np.random.default_rng([cfg.seed, index, 4])  # its own stream too
            if vr.random() < cfg.varied:
                render = (RenderConfig.random(rng) if render is None else render).varied(vr)
        return size, render

    def _weathered(self, index: int, image: np.ndarray) -> np.ndarray:
        """The image, on worn paper for the `weathered` fraction of items, handled hard for the `worn` one."""
        cfg = self.cfg
        if cfg.weathered > 0:
            wr = np.random.default_rng([cfg.seed, index, 2])  # a stream of its own, as above
            if wr.random() < cfg.weathered:
                image = weathered(image, wr)  # photometric only: the geometry holds
        if cfg.worn > 0:
            hr = np.random.default_rng([cfg.seed, index, 3])
            if hr.random() < cfg.worn:
                image = heavy_wear(image, hr, turn=False)  # no turn: the geometry holds
        return image

    def _store(self, index: int, image: np.ndarray, scene: Scene) -> dict:
        """Write the item's JPEG and YOLO label; return its geometry.jsonl object."""
        cfg = self.cfg
        name = f"{index:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise RuntimeError(f"could not encode image {index}")
        out = Path(cfg.out)
        (out / "images" / name).write_bytes(buf.tobytes())
        h, w = image.shape[:2]
        geo = scene.geometry
        label_line = "" if geo is None else _yolo_line(np.asarray(geo.paper_quad, dtype=np.float64), w, h)
        (out / "labels" / f"{index:06d}.txt").write_text(label_line + ("\n" if label_line else ""))
        geometry = {"image": f"images/{name}", "width": w, "height": h, "style": scene.style}
        if geo is None:
            geometry.update(paper_quad=None, paper_box=None)
        else:
            geometry.update(geo.to_json())
        return geometry


def _label_row(image: str, record: ECGRecord, entry: RecordEntry | None, style: str) -> dict:
    """The labels.csv row of an ECG image."""
    row = {"image": image, **{k: int(record.labels.get(k, 0)) for k in LABELS}}
    row.update(
        NORM=int(record.labels.get("NORM", 0)),
        record=entry.record if entry else record.record,
        patient=entry.patient if entry else "",
        fold="" if entry is None or entry.fold is None else entry.fold,
        source=(entry.source if entry else "") or record.source,
        style=style,
        # the simulator's findings (MI territory and age, conduction defect, ST/T kinds), ';'-joined
        findings=";".join(record.meta.get("subtypes") or ()),
    )
    return row


def _read_record_list(path: str) -> frozenset[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read --record-list {path}: {err}") from None
    ids = frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))
    if not ids:
        raise UsageError(f"--record-list {path} names no records")
    return ids


def write_dataset(cfg: SynthConfig, progress: bool = True) -> dict:
    """Generate the dataset described by `cfg`.

    Args:
        cfg: the run's settings.
        progress: show a progress bar on stderr.

    Returns:
        A summary: counts of images, ECG images, negatives and positives per label.
    """
    cfg, entries = _plan(cfg)
    out = Path(cfg.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    n_ecg, counts = _write_items(cfg, _Worker(cfg, entries), progress)
    _write_settings(cfg)
    return {
        "images": cfg.n,
        "ecg_images": n_ecg,
        "negatives": cfg.n - n_ecg,
        "positives": counts,
        "records": len(entries),
    }


def _plan(cfg: SynthConfig) -> tuple[SynthConfig, list[RecordEntry]]:
    """Check the settings and the output directory; select the records (with `per_record`, n follows)."""
    cfg.check()
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty; choose a new directory")
    entries: list[RecordEntry] = []
    if cfg.records:
        entries = select_records(
            record_index(cfg.records, cfg.labels),
            frozenset(cfg.folds) if cfg.folds is not None else None,
            _read_record_list(cfg.record_list) if cfg.record_list else None,
        )
        if cfg.per_record:
            cfg = replace(cfg, n=len(entries) * cfg.per_record)
    return cfg, entries


def _write_items(cfg: SynthConfig, worker: _Worker, progress: bool) -> tuple[int, dict[str, int]]:
    """Make every item (in this process or a pool) and write labels.csv and geometry.jsonl in index order;
    return the number of ECG images and the positives per label."""
    from tqdm import tqdm

    out = Path(cfg.out)
    bar = tqdm(total=cfg.n, desc="synth", unit="img", disable=not progress, dynamic_ncols=True)
    counts = dict.fromkeys(LABELS, 0)
    n_ecg = 0
    fields = ["image", *LABELS, "NORM", "record", "patient", "fold", "source", "style", "findings"]
    with (
        open(out / "labels.csv", "w", newline="", encoding="utf-8") as fcsv,
        open(out / "geometry.jsonl", "w", encoding="utf-8") as fgeo,
    ):
        writer = csv.DictWriter(fcsv, fieldnames=fields, lineterminator="\n")
        writer.writeheader()

        def consume(results):
            nonlocal n_ecg
            for res in results:  # in index order, so the files do not depend on scheduling
                if res["row"] is not None:
                    writer.writerow(res["row"])
                    n_ecg += 1
                    for k in LABELS:
                        counts[k] += res["row"][k]
                fgeo.write(json.dumps(res["geometry"], separators=(",", ":")) + "\n")
                bar.update()

        if cfg.workers == 1:
            consume(worker(i) for i in range(cfg.n))
        else:
            # fork would inherit torch/ORT thread pools from a caller; spawn keeps workers clean.
            ctx = mp.get_context("spawn" if os.name != "posix" else "forkserver")
            with ctx.Pool(cfg.workers) as pool:
                # whole records per task with --per-record, so each decodes once
                consume(pool.imap(worker, range(cfg.n), chunksize=cfg.per_record or 4))
    bar.close()
    return n_ecg, counts


def _write_settings(cfg: SynthConfig) -> None:
    """data.yaml for ultralytics and synth.json (the resolved settings and the version)."""
    out = Path(cfg.out)
    (out / "data.yaml").write_text(
        f"path: {out.resolve()}\ntrain: images\nval: images\n"
        f"names:\n  0: ecg\nkpt_shape: [4, 3]\nflip_idx: {FLIP_IDX}\n",
        encoding="utf-8",
    )
    settings = asdict(cfg) | {"edgeecg_version": __version__}
    (out / "synth.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
