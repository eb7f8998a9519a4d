"""How well ECG labels can be told apart from the signals themselves (a measurement).

    python scripts/signal_ceiling.py [--train 12000] [--test 3000] [--epochs 2] [--threads 1] [--json OUT]
                                     [--page 128x256]
    python scripts/signal_ceiling.py --ptbxl DIR [--fs 100] [--epochs 40] [--crop 0.25] [--weight-decay 0.1]
                                     [--seed 0] [--threads 1] [--json OUT] [--page 128x256]

Simulated mode (the default): records are drawn as `edgeecg synth` draws them (`simulate(rng)`: the
default prevalence, noise on), at 125 Hz for 10 s, and a small 1D CNN (weighted BCE, AdamW, one-cycle)
learns the five labels from the 12 leads. Test records come from another seed. The test AUROC bounds from
below what any classifier could reach on these labels, so it tells the image model's loss (rendering,
resolution, the model) from the labels' own ambiguity.

PTB-XL mode (`--ptbxl DIR`, PTB-XL's own layout): the same network and training learn from the real
records of `strat_fold` 1-8 (on random 2.5 s windows, with weight decay 0.1: 2,010 records overfit it
otherwise) and are scored on whole records of `strat_fold` 9, PTB-XL's validation fold: the signal-level
reference the image model is chasing. Labels come from `load_ptbxl_labels`, signals from `load_record`
at `--fs` (the 100 Hz files, or the 500 Hz ones where they exist and `--fs` is above 100). Each lead has
its median taken off (the amplifier's DC offset) and stays in mV: absolute voltage carries HYP's voltage
criteria, which a per-record z-score would throw away; BatchNorm after the first convolution does the
rest of the scaling.

`--page HxW` (either mode) gives the network only what a 3x4 page at the image model's input size keeps
of each record (`as_page`), which tells the picture's resolution from the image model's reading of it.
Needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LABELS, LEADS  # noqa: E402
from edgeecg.metrics import roc_auc_per_class  # noqa: E402
from edgeecg.synth.real_records import load_ptbxl_labels, load_record  # noqa: E402
from edgeecg.synth.render import COLUMNS_3X4  # noqa: E402
from edgeecg.synth.waveforms import simulate  # noqa: E402

FS = 125.0  # the simulated records' rate; PTB-XL mode uses --fs
TRAIN_FOLDS = (1, 2, 3, 4, 5, 6, 7, 8)
VALIDATION_FOLDS = (9,)
# PTB-XL mode's recipe, chosen on fold 9 (docs/signal-reference.md): 2,010 records overfit the network
# within ~15 epochs of whole records, so it trains on random 2.5 s windows with stronger weight decay.
PTBXL_EPOCHS = 40
PTBXL_CROP = 0.25
PTBXL_WEIGHT_DECAY = 0.1


# The renderer's 3x4 page: each lead's 2.5 s column (leads in simulate()'s order), and the 10 s lead II strip.
_COLUMN = [next(c for c, leads in enumerate(COLUMNS_3X4) if lead in leads) for lead in LEADS]
_STRIP = LEADS.index("II")


def as_page(x: np.ndarray, px_per_s: float, px_per_mv: float, fs: float = FS) -> np.ndarray:
    """What a 3x4 page at this resolution keeps of 12-lead records [N, 12, T] -> [N, 26, T']: every lead
    only in its own 2.5 s column plus the lead II strip (13 traces), each as the lowest and highest value
    of the pixel column it falls in (what a drawn stroke covers), rounded to whole pixels (no anti-aliasing).
    Only the resolution is modelled: no grid, blur or stroke width, and each trace comes labelled with its
    lead, which a picture says only by where the trace sits. `fs` is the records' sampling rate."""
    n, leads, t = x.shape
    page = np.zeros((n, leads + 1, t), np.float32)
    quarter = t // 4
    for lead, col in enumerate(_COLUMN):
        page[:, lead, col * quarter : (col + 1) * quarter] = x[:, lead, col * quarter : (col + 1) * quarter]
    page[:, leads] = x[:, _STRIP]
    step = fs / px_per_s
    edges = np.round(np.arange(0, t + 1e-9, step)).astype(int)
    spans = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    lo = np.stack([page[..., a:b].min(-1) for a, b in spans], -1)
    hi = np.stack([page[..., a:b].max(-1) for a, b in spans], -1)
    out = np.concatenate([lo, hi], 1)
    return (np.round(out * px_per_mv) / px_per_mv).astype(np.float32) if px_per_mv > 0 else out


def records(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulated records [n, 12, 10 * FS] in mV and their labels [n, 5] (LABELS order), drawn from `seed`."""
    x = np.zeros((n, 12, int(10 * FS)), np.float32)
    y = np.zeros((n, len(LABELS)), np.float32)
    for i in range(n):
        r = simulate(np.random.default_rng([seed, i]), fs=FS)
        x[i] = r.signal
        y[i] = [r.labels[k] for k in LABELS]
    return x, y


def ptbxl_rows(root: Path, folds: Iterable[int]) -> list[dict[str, str]]:
    """The rows of `root/ptbxl_database.csv` in the given `strat_fold`s, in file order.

    Args:
        root: a folder in PTB-XL's layout.
        folds: the `strat_fold` values to keep (PTB-XL's split: 1-8 train, 9 validate, 10 test).

    Returns:
        The CSV rows as dicts of strings.
    """
    keep = {int(f) for f in folds}
    with open(root / "ptbxl_database.csv", newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(float(row["strat_fold"])) in keep]


def record_path(root: Path, row: dict[str, str], fs: float) -> Path:
    """The WFDB record (base name) of one database row to read at `fs`.

    The 100 Hz file (`filename_lr`) unless `fs` is above 100 Hz and the 500 Hz one (`filename_hr`)
    exists, so nothing is upsampled that need not be; whichever of the two exists otherwise.

    Raises:
        FileNotFoundError: neither file's header is there.
    """
    names = [row.get("filename_lr"), row.get("filename_hr")]
    for name in names[::-1] if fs > 100 else names:
        if name and Path(f"{root / name}.hea").is_file():
            return root / name
    raise FileNotFoundError(f"ecg_id {row.get('ecg_id')}: no header for {names} under {root}")


def load_ptbxl(root: Path, rows: list[dict[str, str]], fs: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Signals and labels of PTB-XL database rows.

    Args:
        root: a folder in PTB-XL's layout (`ptbxl_database.csv`, `scp_statements.csv`, the records).
        rows: rows of `ptbxl_rows`.
        fs: sampling rate to read at (`load_record` resamples).

    Returns:
        x float32 [n, 12, 10 * fs] in mV (LEADS order, as read) and y float32 [n, 5] (LABELS order).
    """
    labels = load_ptbxl_labels(root / "ptbxl_database.csv", root / "scp_statements.csv")
    x = np.zeros((len(rows), 12, int(round(10 * fs))), np.float32)
    y = np.zeros((len(rows), len(LABELS)), np.float32)
    for i, row in enumerate(rows):
        lab = labels[int(float(row["ecg_id"]))]
        x[i] = load_record(record_path(root, row, fs), fs=fs, duration=10.0, labels=lab).signal
        y[i] = [lab[k] for k in LABELS]
    return x, y


def remove_offset(x: np.ndarray) -> np.ndarray:
    """[..., T] less each trace's median: the DC offset goes, amplitudes stay in mV."""
    return (x - np.median(x, -1, keepdims=True)).astype(np.float32)


def page_rates(size: str) -> tuple[float, float]:
    """(px/s, px/mV) of a 3x4 page drawn at classifier input size `size` ("HxW")."""
    h, w = (int(v) for v in size.lower().split("x"))
    # a 279 x 216 mm letter page; its grid spans 250 mm (10 s at 25 mm/s) of the width; 10 mm/mV
    return w / 279 * 25, h / 216 * 10


def network(channels: int = 12):
    """The small 1D CNN: five conv blocks (each halving the length), mean and max pooled, one linear head.

    Args:
        channels: input channels (12 leads, or 26 traces of `as_page`).

    Returns:
        A torch module mapping [N, channels, T] to [N, 5] logits.
    """
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv1d(i, o, 7, padding=3), nn.BatchNorm1d(o), nn.ReLU(),
            nn.Conv1d(o, o, 7, padding=3), nn.BatchNorm1d(o), nn.ReLU(), nn.MaxPool1d(2),
        )  # fmt: skip

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                block(channels, 32), block(32, 48), block(48, 64), block(64, 96), block(96, 128)
            )
            self.head = nn.Linear(256, len(LABELS))

        def forward(self, x):
            z = self.features(x)
            return self.head(torch.cat([z.mean(-1), z.amax(-1)], 1))

    return Net()


def predict(net, x: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Sigmoid outputs [n, 5] of `net` in eval mode on records [n, C, T]."""
    import torch  # noqa: PLC0415

    net.eval()
    xv = torch.from_numpy(x)
    with torch.no_grad():
        return torch.cat([net(xv[i : i + chunk]) for i in range(0, len(xv), chunk)]).sigmoid().numpy()


def fit(
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    epochs: int,
    batch: int = 64,
    lr: float = 2e-3,
    crop: float = 1.0,
    weight_decay: float = 1e-2,
    seed: int = 0,
    t0: float | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[object, list[dict]]:
    """Train `network` on (xtr, ytr) and score it on (xte, yte) after every epoch.

    Weighted BCE (pos_weight = negatives / positives of each class in ytr), AdamW, a one-cycle schedule,
    a random gain of +-10% per record and, with `crop` < 1, a random window of that fraction of each
    record (scoring sees whole records; the pooled head does not care about length). Deterministic for a
    given `seed` and thread count.

    Args:
        xtr: training records [n, C, T].
        ytr: their labels [n, 5].
        xte: scored records [m, C, T].
        yte: their labels [m, 5].
        epochs: passes over the training records (each drops the last incomplete batch).
        batch: records per step.
        lr: the schedule's peak learning rate.
        crop: the fraction of T each training record is cut to (1: no cropping).
        weight_decay: AdamW's decoupled weight decay.
        seed: torch's seed (initial weights, batch order, gains).
        t0: the clock the history's seconds count from (default: now).
        log: where the per-epoch line goes (None: nowhere).

    Returns:
        (the trained network, one dict per epoch: epoch, macro, auroc {label: AUROC}, seconds).
    """
    import torch  # noqa: PLC0415

    t0 = time.time() if t0 is None else t0
    torch.manual_seed(seed)
    net = network(xtr.shape[1])
    pos = ytr.mean(0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / pos))
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=weight_decay)
    per_epoch = max(1, len(xtr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * per_epoch)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    width = max(1, round(crop * xtr.shape[-1]))
    history = []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(xtr))
        for b in range(per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            x = xt[idx] * (1 + 0.1 * torch.randn(len(idx), 1, 1))  # amplifier gain differs between machines
            if width < x.shape[-1]:  # a random window of each record
                start = torch.randint(0, x.shape[-1] - width + 1, (len(idx), 1))
                cols = (start + torch.arange(width))[:, None, :].expand(-1, x.shape[1], -1)
                x = x.gather(2, cols)
            loss = loss_fn(net(x), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        auroc = dict(zip(LABELS, roc_auc_per_class(yte, predict(net, xte)).tolist(), strict=True))
        macro = float(np.mean(list(auroc.values())))
        history.append({"epoch": epoch, "macro": macro, "auroc": auroc, "seconds": time.time() - t0})
        if log:
            log(
                f"epoch {epoch} ({time.time() - t0:.0f} s): macro AUROC {macro:.4f} "
                + " ".join(f"{k} {a:.3f}" for k, a in auroc.items())
            )
    return net, history


def machine() -> str:
    """The CPU model and core count, for the record."""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ptbxl", metavar="DIR", help="train on PTB-XL folds 1-8 here, score fold 9")
    ap.add_argument("--fs", type=float, default=100.0, help="PTB-XL mode: sampling rate in Hz")
    ap.add_argument("--train", type=int, default=12000, help="simulated training records (seed 1234)")
    ap.add_argument("--test", type=int, default=3000, help="simulated test records (seed 5678)")
    ap.add_argument("--epochs", type=int, help=f"default 2 (simulated), {PTBXL_EPOCHS} (PTB-XL)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    ap.add_argument(
        "--crop",
        type=float,
        help=f"train on random windows of this fraction of each record (default 1, PTB-XL {PTBXL_CROP})",
    )
    ap.add_argument(
        "--weight-decay", type=float, help=f"AdamW weight decay (default 0.01, PTB-XL {PTBXL_WEIGHT_DECAY})"
    )
    ap.add_argument("--seed", type=int, default=0, help="torch seed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", help="write the per-epoch AUROCs and the run's facts here")
    ap.add_argument(
        "--page",
        metavar="HxW",
        help="see the records as a 3x4 page of this classifier input size does (e.g. 128x256): "
        "columns of 2.5 s, one pixel column's min and max, amplitudes in whole pixels",
    )
    args = ap.parse_args()

    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.ptbxl:
        root, fs = Path(args.ptbxl), args.fs
        epochs = PTBXL_EPOCHS if args.epochs is None else args.epochs
        crop = PTBXL_CROP if args.crop is None else args.crop
        decay = PTBXL_WEIGHT_DECAY if args.weight_decay is None else args.weight_decay
        xtr, ytr = load_ptbxl(root, ptbxl_rows(root, TRAIN_FOLDS), fs)
        xte, yte = load_ptbxl(root, ptbxl_rows(root, VALIDATION_FOLDS), fs)
        xtr, xte = remove_offset(xtr), remove_offset(xte)
        data = {"ptbxl": str(root), "fs": fs, "train_folds": TRAIN_FOLDS, "scored_folds": VALIDATION_FOLDS}
        took = time.time() - t0
        print(f"PTB-XL: {len(xtr)} records of folds 1-8, {len(xte)} of fold 9 at {fs:g} Hz in {took:.0f} s")
    else:
        fs, epochs = FS, 2 if args.epochs is None else args.epochs
        crop = 1.0 if args.crop is None else args.crop
        decay = 1e-2 if args.weight_decay is None else args.weight_decay
        xtr, ytr = records(1234, args.train)
        xte, yte = records(5678, args.test)
        data = {"fs": fs}
        print(f"simulated {args.train} + {args.test} records in {time.time() - t0:.0f} s", flush=True)
    if args.page:
        px_per_s, px_per_mv = page_rates(args.page)
        xtr, xte = as_page(xtr, px_per_s, px_per_mv, fs), as_page(xte, px_per_s, px_per_mv, fs)
        print(f"as a {args.page} page: {px_per_s:.1f} px/s, {px_per_mv:.2f} px/mV, {xtr.shape[-1]} columns")

    net, history = fit(
        xtr,
        ytr,
        xte,
        yte,
        epochs=epochs,
        batch=args.batch,
        lr=args.lr,
        crop=crop,
        weight_decay=decay,
        seed=args.seed,
        t0=t0,
        log=functools.partial(print, flush=True),
    )
    params = sum(p.numel() for p in net.parameters())
    seconds = time.time() - t0
    last = history[-1]
    print(
        f"final (epoch {last['epoch']}): macro AUROC {last['macro']:.4f}; {params:,} parameters, "
        f"{seconds:.0f} s on {machine()}, {args.threads} torch thread(s)"
    )
    if args.json:
        facts = {
            "train": len(xtr), "test": len(xte), **data, "page": args.page, "epochs": epochs,
            "batch": args.batch, "lr": args.lr, "crop": crop, "weight_decay": decay, "seed": args.seed,
            "params": params, "seconds": seconds, "machine": machine(), "threads": args.threads,
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
        }  # fmt: skip
        Path(args.json).write_text(json.dumps({**facts, "final": last, "history": history}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
