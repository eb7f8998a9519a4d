"""`edgeecg-export`: fold checkpoints → ONNX, fused ensemble, FP16 ONNX, TensorRT plans, a verified bundle.

Export a bundle on a workstation:
    edgeecg-export --checkpoints runs/stage2 --detector runs/detector/best.pt --out bundle --fused
Build TensorRT plans for it on the target (Jetson, T4):
    edgeecg-export --engines --bundle bundle
Put a retrained detector, verifier or corner model into a copy of a bundle (its classifier kept):
    edgeecg-export --bundle bundle --detector runs/detector2/detector_rect.onnx --out bundle2
Derive the FP16 graph of a bundle without checkpoints or a GPU (checked against its classifier on CPU):
    edgeecg-export --bundle edgeecg/assets/default --variants fp16 --out bundle_fp16
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time

from edgeecg.cli import guarded
from edgeecg.errors import UsageError
from edgeecg.export.bundle_writer import (
    VARIANTS,
    ExportConfig,
    add_engines,
    derive_bundle,
    export_bundle,
    summary,
    swap_preprocessing,
)
from edgeecg.export.detector import LETTERBOXES
from edgeecg.export.parity import PARITY_SAMPLES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers like 1,4,8, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, not {text!r}")
    return sizes


def _variants(text: str) -> tuple[str, ...]:

    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in names if x not in VARIANTS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"variants are a comma list of {', '.join(VARIANTS)}, not {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `edgeecg-export`."""
    p = _Parser(
        prog="edgeecg-export",
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="DIR|FILE",
        help="fold checkpoints: directories (every *.safetensors with its JSON sidecar) or files",
    )
    p.add_argument(
        "--detector",
        metavar="FILE",
        help="paper detector: a .pt written by our own detector training (loading it unpickles the "
        "file through ultralytics: never pass a .pt from elsewhere), or a detector .onnx",
    )
    p.add_argument(
        "--detector-imgsz", type=int, default=640, help="detector input size for a .pt (default 640)"
    )
    p.add_argument(
        "--detector-letterbox",
        choices=LETTERBOXES,
        help="square: pad every image to the square input the detector was trained on (default); rect: "
        "dynamic height and width, pad only to the stride (a 4:3 photo as 256x320: faster, but wide images "
        "meet less padding than in training)",
    )
    p.add_argument(
        "--verifier",
        metavar="FILE",
        help="verifier.onnx from `edgeecg-train verifier` (verifier.json beside it)",
    )
    p.add_argument(
        "--corner-model",
        metavar="FILE",
        help="corner model: corners.onnx from `edgeecg-train corners` (corners.json beside it)",
    )
    p.add_argument("--sam", metavar="FILE", help="optional SAM/MobileSAM checkpoint (needs the 'sam' extra)")
    p.add_argument(
        "--sam-type", default="vit_t", help="SAM registry name: vit_t (MobileSAM), vit_b, vit_l, vit_h"
    )
    p.add_argument("--out", metavar="BUNDLE", help="bundle directory to write (replaced atomically)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp16",
        help="fp16 (default) adds the mixed-precision FP16 ONNX that GPU plans are built from",
    )
    which.add_argument(
        "--variants",
        type=_variants,
        metavar="fp32,fp16,int8w",
        help="classifier variants to write instead of --precision: fp32, fp16 (mixed FP16 ONNX), int8w "
        "(weights stored as per-channel int8, FP32 compute; about 4x smaller). Without fp32 the FP32 export "
        "is still made and checked against, but left out of the bundle",
    )
    p.add_argument(
        "--detector-weights",
        choices=("fp32", "int8"),
        default="fp32",
        help="int8: store the detector's weights as per-channel int8 (FP32 compute; default fp32)",
    )
    p.add_argument("--fused", action="store_true", help="also write one fused ensemble graph")
    p.add_argument(
        "--fusion",
        choices=("grouped", "parallel"),
        default="grouped",
        help="grouped: the members as one network of K-fold width with grouped convolutions, where the "
        "architecture allows (BatchNorm conv-MLP ConvNeXt), else parallel; parallel: the members side by "
        "side in one graph (default grouped)",
    )
    p.add_argument(
        "--engines",
        action="store_true",
        help="build TensorRT plans (needs tensorrt and an NVIDIA GPU; skipped with a message otherwise)",
    )
    p.add_argument(
        "--bundle",
        metavar="BUNDLE",
        help="an existing bundle: with --engines, build its plans (deriving the FP16 graph first where it has "
        "only int8w); with --variants, copy it to --out with those classifier variants added; else copy it to "
        "--out with the models given by --detector / --verifier / --corner-model in place of its own (its "
        "classifier kept)",
    )
    p.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        default=(1, 4, 8),
        metavar="1,4,8",
        help="batch sizes the plans run (one profile: min, median as opt, max)",
    )
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace limit in MiB")
    p.add_argument(
        "--timing-cache", metavar="DIR", help="TensorRT timing cache dir (default ~/.cache/edgeecg/tensorrt)"
    )
    p.add_argument(
        "--thresholds", metavar="FILE", help="per-class thresholds JSON from training's OOF predictions"
    )
    p.add_argument(
        "--parity-data",
        metavar="DIR",
        help="labelled dataset dir (labels.csv + images) for parity checks; default synthetic pages",
    )
    p.add_argument(
        "--parity-samples",
        type=int,
        default=PARITY_SAMPLES,
        help=f"samples for parity checks (default {PARITY_SAMPLES}: fewer leave the AUROC limit below one reordered pair)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    return p


def _config(args: argparse.Namespace, argv: list[str]) -> object:

    return ExportConfig(
        checkpoints=tuple(args.checkpoints or ()),
        out=args.out or args.bundle or "",
        detector=args.detector,
        detector_imgsz=args.detector_imgsz,
        detector_letterbox=args.detector_letterbox,
        verifier=args.verifier,
        corner_model=args.corner_model,
        sam=args.sam,
        sam_type=args.sam_type,
        precision=args.precision,
        variants=tuple(args.variants or ()),
        detector_weights=args.detector_weights,
        fused=args.fused,
        grouped=args.fusion == "grouped",
        engines=args.engines,
        batch_sizes=tuple(args.batch_sizes),
        workspace_mb=args.workspace_mb,
        timing_cache=args.timing_cache,
        thresholds=args.thresholds,
        parity_data=args.parity_data,
        parity_samples=args.parity_samples,
        command=shlex.join(["edgeecg-export", *argv]),
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Carry out a parsed command line; returns the exit code."""

    def progress(msg: str) -> None:
        print(msg, flush=True)

    start = time.perf_counter()
    if args.bundle and not args.engines:
        if args.checkpoints:
            raise UsageError("--bundle takes no --checkpoints (it keeps that bundle's classifier)")
        if not args.out:
            raise UsageError("--out BUNDLE is required: --bundle is copied there with its models replaced")
        if args.variants:
            if args.detector or args.verifier or args.corner_model:
                raise UsageError("--variants adds classifier variants; replace models in a separate run")
            manifest = derive_bundle(args.bundle, _config(args, argv), progress)
        else:
            manifest = swap_preprocessing(args.bundle, _config(args, argv), progress)
        out = args.out
    elif args.bundle:
        if args.checkpoints or args.out:
            raise UsageError("--bundle takes no --checkpoints or --out (it adds plans to that bundle)")
        manifest = add_engines(args.bundle, _config(args, argv), progress)
        out = args.bundle
    else:
        if not args.checkpoints:
            raise UsageError("--checkpoints is required (or --engines --bundle BUNDLE)")
        if not args.out:
            raise UsageError("--out BUNDLE is required")
        if not args.detector:
            raise UsageError("--detector is required (a .pt from our detector training, or a detector .onnx)")
        manifest = export_bundle(_config(args, argv), progress)
        out = args.out
    print(summary(out, manifest))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edgeecg-export`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error already printed on one line (2)
        return int(exit_.code or 0)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s"
    )

    return guarded("edgeecg-export", lambda: run(args, argv))


if __name__ == "__main__":
    sys.exit(main())
