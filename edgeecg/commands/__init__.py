"""Subcommands of `edgeecg`, one module each, plus the model options they share."""

from __future__ import annotations

import argparse
from typing import Any

from edgeecg.backends import BACKENDS
from edgeecg.pipeline import Pipeline


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
        "--no-verifier",
        dest="use_verifier",
        action="store_false",
        help="skip the bundle's verifier on the flattened page: only the detector can reject",
    )
    # the flag's name before the component had one name; kept working, out of the help
    parser.add_argument("--no-ecg-check", dest="use_verifier", action="store_false", help=argparse.SUPPRESS)
    if batching:
        parser.add_argument(
            "--precision", help="classifier variant from the bundle (fp32, int8w, fp16; default by backend)"
        )
        parser.add_argument(
            "--batch", type=int, default=8, metavar="N", help="images per classifier call (default 8)"
        )


def open_pipeline(args: argparse.Namespace) -> Any:
    """The Pipeline that `add_model_arguments` options describe (batch 1 where there is no --batch)."""

    return Pipeline.from_bundle(
        args.bundle,
        backend=args.backend,
        threads=args.threads,
        precision=getattr(args, "precision", None),
        batch_size=getattr(args, "batch", 1),
        use_verifier=getattr(args, "use_verifier", True),
    )
