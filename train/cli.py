"""`edgeecg-train`: stage1, stage2 (k-fold), evaluate, show-config.

    edgeecg-train stage1 --config X.yaml --out DIR
    edgeecg-train stage2 --config X.yaml --init DIR/stage1/best.safetensors --out DIR [--fold K]
    edgeecg-train evaluate --out DIR [--test DATASET]
    edgeecg-train show-config [--config X.yaml]
    edgeecg-train detector train|export|calibrate|evaluate ...   (the paper detector; see train/detector.py)
    edgeecg-train verifier --data ... --tune ... --detector ...  (the verifier; see train/verifier.py)
    edgeecg-train corners --data ... --val ...                   (the corner model; see train/corners.py)

`--set key=value` (repeatable, dotted keys for nested settings, values parsed as YAML) overrides the
config file. Under torchrun (WORLD_SIZE > 1) the same commands train with DDP. Exit codes: 0 fine,
1 failure, 2 bad usage.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import logging
import os
import sys
from pathlib import Path

import yaml

from edgeecg.cli import guarded
from edgeecg.errors import UsageError
from edgeecg.train import config as C
from edgeecg.train.corners import main_corners
from edgeecg.train.detector import main_detector
from edgeecg.train.evaluate import ensemble_report, oof_report, read_thresholds
from edgeecg.train.verifier import main_verifier

# Imported inside functions, so they load only when used: edgeecg.train.config and edgeecg.train.stages
# (PyYAML, torch, albumentations).

log = logging.getLogger(__name__)


def _overrides(pairs: list[str]) -> dict:
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--set wants key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def _absolute(data: dict) -> dict:
    """Paths given with --set are relative to the current directory."""
    entries = [data.get("target"), data.get("val")]
    if isinstance(data.get("sources"), list):
        entries += data["sources"]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("path"):
            entry["path"] = str(Path(entry["path"]).resolve())
    if data.get("init_checkpoint"):
        data["init_checkpoint"] = str(Path(data["init_checkpoint"]).resolve())
    return data


def _config(args: argparse.Namespace):
    from edgeecg.train.config import load_config

    over = _absolute(_overrides(args.set or []))
    return load_config(args.config, over)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeecg-train", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser, out: bool = True) -> None:
        p.add_argument(
            "--config",
            action="append",
            help="YAML config (see `edgeecg-train show-config` for the keys); repeat to layer files, a later "
            "one changing only the keys it names",
        )
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
        )
        if out:
            p.add_argument("--out", required=True, help="run directory (stage1/ and stage2/ go inside)")

    p1 = sub.add_parser("stage1", help="domain fine-tuning on a weighted mix of sources")
    common(p1)
    p2 = sub.add_parser("stage2", help="k-fold fine-tuning on the target set from the stage I weights")
    common(p2)
    p2.add_argument(
        "--init", help="initial weights (default: config init_checkpoint, else OUT/stage1/best.safetensors)"
    )
    p2.add_argument("--fold", type=int, help="run only fold K (run folds as parallel processes)")
    p3 = sub.add_parser(
        "evaluate", help="report out-of-fold metrics; with --test, the ensemble on a test set"
    )
    common(p3)
    p3.add_argument(
        "--test", help="labelled test dataset (dataset dir or CSV; column names from --config target)"
    )
    p3.add_argument("--report", help="where to write the test report (default OUT/eval)")
    p4 = sub.add_parser("show-config", help="print the resolved config, or every key with its documentation")
    common(p4, out=False)
    p4.add_argument("--keys", action="store_true", help="list every key with its default and meaning")
    # Parsed by train/detector.py itself; listed here so --help shows it.
    sub.add_parser(
        "detector",
        help="train, export, calibrate or evaluate the paper detector (train|export|calibrate|evaluate ...)",
    )
    sub.add_parser("verifier", help="train the verifier on pages flattened by the runtime chain (see --help)")
    sub.add_parser("corners", help="train the corner model on synthetic scenes' true corners (see --help)")
    return parser


def _say(*a, **k) -> None:  # under torchrun only rank 0 reports
    if os.environ.get("RANK", "0") == "0":
        builtins.print(*a, **k)


def _run(args: argparse.Namespace) -> int:

    if args.command == "show-config":
        if args.keys:
            _say("\n".join(C.describe()))
        else:
            _say(yaml.safe_dump(C.config_to_dict(_config(args)), sort_keys=False), end="")
        return 0
    cfg = _config(args)
    out = Path(args.out)
    if args.command == "stage1":
        from edgeecg.train.stages import run_stage1

        res = run_stage1(cfg, out)
        _say(
            f"stage1: best val macro AUROC {res.best_score:.4f} at epoch {res.best_epoch} -> {out / 'stage1'}"
        )
        return 0
    if args.command == "stage2":
        from edgeecg.train.stages import run_stage2

        init = args.init or cfg.init_checkpoint or None
        if init is None and (out / "stage1" / "best.safetensors").is_file():
            init = str(out / "stage1" / "best.safetensors")
        res = run_stage2(cfg, out, init=init, fold=args.fold)
        for f, r in res["folds"].items():
            _say(f"stage2 fold {f}: best val macro AUROC {r.best_score:.4f} at epoch {r.best_epoch}")
        if res["merged"]:
            pooled = res["merged"]["report"]["pooled"]["macro_auroc"]
            _say(f"stage2: out-of-fold macro AUROC {pooled:.4f}; members in {out / 'stage2' / 'ensemble'}")
        return 0
    if args.command == "evaluate":
        return _evaluate(args, cfg, out)
    raise UsageError(f"unknown command {args.command}")


def _evaluate(args: argparse.Namespace, cfg, out: Path) -> int:

    from edgeecg.train.stages import datasets_for

    s2 = out / "stage2"
    if not (s2 / "oof.npz").is_file():
        raise UsageError(f"{s2} has no merged out-of-fold predictions (run every stage2 fold first)")
    rep = oof_report(s2)
    _say(f"out-of-fold macro AUROC {rep['pooled']['macro_auroc']:.4f} (report {s2 / 'report.json'})")
    if args.test:
        from edgeecg.train.config import DataConfig
        from edgeecg.train.stages import open_source

        base = cfg.target or DataConfig()
        test_cfg = dataclasses.replace(
            base, path=str(Path(args.test).resolve()), kind="dir", root="", geometry=""
        )
        # With cache on, the test set is pre-processed once, not once per member.
        ds = datasets_for(cfg, [open_source(cfg, test_cfg, out)], train_augment=False)
        members = sorted((s2 / "ensemble").glob("fold*.safetensors"))
        report_dir = Path(args.report) if args.report else out / "eval"
        r = ensemble_report(
            members,
            ds,
            read_thresholds(s2 / "thresholds.json"),
            report_dir,
            cfg.eval_batch_size,
            progress=cfg.progress,
        )
        _say(
            f"test ensemble macro AUROC {r['ensemble_mean']['macro_auroc']:.4f} (report {report_dir / 'report.json'})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edgeecg-train`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["detector"]:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return guarded("edgeecg-train detector", lambda: main_detector(argv[1:]), say=_say)
    if argv[:1] == ["verifier"]:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return guarded("edgeecg-train verifier", lambda: main_verifier(argv[1:]), say=_say)
    if argv[:1] == ["corners"]:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return guarded("edgeecg-train corners", lambda: main_corners(argv[1:]), say=_say)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2), format="%(levelname)s %(name)s: %(message)s"
    )

    return guarded(f"edgeecg-train {args.command}", lambda: _run(args), say=_say)


if __name__ == "__main__":
    sys.exit(main())
