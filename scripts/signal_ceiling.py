"""How well the simulator's labels can be told apart from the ECG signals themselves (a measurement).

    python scripts/signal_ceiling.py [--train 12000] [--test 3000] [--epochs 2] [--threads 1] [--json OUT]
                                     [--page 128x256]

Records are drawn as `edgeecg synth` draws them (`simulate(rng)`: the default prevalence, noise on), at
125 Hz for 10 s, and a small 1D CNN (weighted BCE, AdamW, one-cycle) learns the five labels from the 12
leads. Test records come from another seed. The test AUROC bounds from below what any classifier could
reach on these labels, so it tells the image model's loss (rendering, resolution, the model) from the
labels' own ambiguity. `--page HxW` gives the network only what a 3x4 page at the image model's input
size keeps of each record (`as_page`), which tells the picture's resolution from the image model's reading
of it. Needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LABELS, LEADS  # noqa: E402
from edgeecg.metrics import roc_auc_per_class  # noqa: E402
from edgeecg.synth.render import COLUMNS_3X4  # noqa: E402
from edgeecg.synth.waveforms import simulate  # noqa: E402

FS = 125.0


# The renderer's 3x4 page: each lead's 2.5 s column (leads in simulate()'s order), and the 10 s lead II strip.
_COLUMN = [next(c for c, leads in enumerate(COLUMNS_3X4) if lead in leads) for lead in LEADS]
_STRIP = LEADS.index("II")


def as_page(x: np.ndarray, px_per_s: float, px_per_mv: float) -> np.ndarray:
    """What a 3x4 page at this resolution keeps of 12-lead records [N, 12, T] -> [N, 26, T']: every lead
    only in its own 2.5 s column plus the lead II strip (13 traces), each as the lowest and highest value
    of the pixel column it falls in (what a drawn stroke covers), rounded to whole pixels (no anti-aliasing).
    Only the resolution is modelled: no grid, blur or stroke width, and each trace comes labelled with its
    lead, which a picture says only by where the trace sits."""
    n, leads, t = x.shape
    page = np.zeros((n, leads + 1, t), np.float32)
    quarter = t // 4
    for lead, col in enumerate(_COLUMN):
        page[:, lead, col * quarter : (col + 1) * quarter] = x[:, lead, col * quarter : (col + 1) * quarter]
    page[:, leads] = x[:, _STRIP]
    step = FS / px_per_s
    edges = np.round(np.arange(0, t + 1e-9, step)).astype(int)
    spans = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    lo = np.stack([page[..., a:b].min(-1) for a, b in spans], -1)
    hi = np.stack([page[..., a:b].max(-1) for a, b in spans], -1)
    out = np.concatenate([lo, hi], 1)
    return (np.round(out * px_per_mv) / px_per_mv).astype(np.float32) if px_per_mv > 0 else out


def records(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((n, 12, int(10 * FS)), np.float32)
    y = np.zeros((n, len(LABELS)), np.float32)
    for i in range(n):
        r = simulate(np.random.default_rng([seed, i]), fs=FS)
        x[i] = r.signal
        y[i] = [r.labels[k] for k in LABELS]
    return x, y


def network(channels: int = 12):
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=12000, help="training records (seed 1234)")
    ap.add_argument("--test", type=int, default=3000, help="test records (seed 5678)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", help="write the per-epoch test AUROCs here")
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
    xtr, ytr = records(1234, args.train)
    xte, yte = records(5678, args.test)
    print(f"simulated {args.train} + {args.test} records in {time.time() - t0:.0f} s", flush=True)
    if args.page:
        h, w = (int(v) for v in args.page.lower().split("x"))
        # a 279 x 216 mm letter page; its grid spans 250 mm (10 s at 25 mm/s) of the width; 10 mm/mV
        px_per_s, px_per_mv = w / 279 * 25, h / 216 * 10
        xtr, xte = as_page(xtr, px_per_s, px_per_mv), as_page(xte, px_per_s, px_per_mv)
        print(f"as a {h}x{w} page: {px_per_s:.1f} px/s, {px_per_mv:.2f} px/mV, {xtr.shape[-1]} columns")

    torch.manual_seed(0)
    net = network(xtr.shape[1])
    pos = ytr.mean(0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / pos))
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-2)
    batch = 64
    per_epoch = args.train // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.epochs * per_epoch)
    xt, yt, xv = torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte)
    history = []
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(args.train)
        for b in range(per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            x = xt[idx] * (1 + 0.1 * torch.randn(len(idx), 1, 1))  # amplifier gain differs between machines
            loss = loss_fn(net(x), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            p = torch.cat([net(xv[i : i + 256]) for i in range(0, args.test, 256)]).sigmoid().numpy()
        auroc = dict(zip(LABELS, roc_auc_per_class(yte, p).tolist(), strict=True))
        macro = float(np.mean(list(auroc.values())))
        history.append({"epoch": epoch, "macro": macro, "auroc": auroc, "seconds": time.time() - t0})
        print(
            f"epoch {epoch} ({time.time() - t0:.0f} s): test macro AUROC {macro:.4f} "
            + " ".join(f"{k} {a:.3f}" for k, a in auroc.items()),
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"train": args.train, "test": args.test, "history": history}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
