"""Subcommands of `edgeecg`, one module each, plus the model options they share."""

from __future__ import annotations

import argparse
from typing import Any

from edgeecg.backends import BACKENDS


def add_model_arguments(parser: argparse.ArgumentParser, batching: bool = True) -> None:
    """The options that choose and run a model bundle: --bundle, --backend, --threads (+ --precision, --batch)."""
    parser.add_argument("--bundle", metavar="DIR", help="model bundle directory (default: the bundled model)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", *BACKENDS),
        help="inference engine; auto = TensorRT when a GPU and a matching plan exist, else ONNX Runtime",
    )
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N", help="CPU threads (default: library's choice)"
    )
    parser.add_argument(
        "--no-ecg-check",
        dest="ecg_check",
        action="store_false",
        help="skip the bundle's ECG check (verifier) on the flattened page: only the detector can reject",
    )
    if batching:
        parser.add_argument(
            "--precision", help="classifier variant from the bundle (fp32, int8w, fp16; default by backend)"
        )
        parser.add_argument(
            "--batch", type=int, default=8, metavar="N", help="images per classifier call (default 8)"
        )


def open_pipeline(args: argparse.Namespace) -> Any:
    """The Pipeline that `add_model_arguments` options describe (batch 1 where there is no --batch)."""
    from edgeecg.pipeline import Pipeline  # noqa: PLC0415 (imports onnxruntime)

    return Pipeline.from_bundle(
        args.bundle,
        backend=args.backend,
        threads=args.threads,
        precision=getattr(args, "precision", None),
        batch_size=getattr(args, "batch", 1),
        ecg_check=getattr(args, "ecg_check", True),
    )
