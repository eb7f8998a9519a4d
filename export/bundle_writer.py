"""Fold checkpoints (+ detector, + SAM) → a verified model bundle (docs/design.md section 3), built atomically.

Steps: export every member to ONNX and check it against torch; optionally fuse the members into one graph
and check it against them; optionally derive the mixed FP16 ONNX and/or the int8-weight ONNX ("int8w") and
check each against FP32 in ONNX Runtime; export the detector (optionally with int8 weights) and SAM; write the manifest with every file's sha256 and the provenance; verify it; and,
where TensorRT and a GPU exist, build plans and check their parity. Everything is built in a temporary sibling
directory (`AtomicBundleDir`), so a failure leaves any existing bundle untouched.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS, __version__
from edgeecg._lazy import require
from edgeecg.backends.onnxruntime import INT8_WEIGHTS_SESSION_CONFIG, OnnxRuntimeRunner, ort_session_config
from edgeecg.bundle import (
    DEFAULT_PREPROCESS,
    FORMAT,
    AtomicBundleDir,
    file_entry,
    iter_file_entries,
    load_manifest,
    sha256_file,
    verify,
    write_manifest,
)
from edgeecg.errors import BackendError, MissingExtraError, UsageError
from edgeecg.export.checkpoints import find_checkpoints, load_member
from edgeecg.export.detector import export_detector
from edgeecg.export.fp16 import convert_to_mixed_fp16
from edgeecg.export.fused import OUTPUTS, check_fused, export_fused, sigmoid
from edgeecg.export.int8w import dequantize_weights, quantize_weights_int8
from edgeecg.export.onnx_export import check_inputs, export_member
from edgeecg.export.parity import (
    PARITY_SAMPLES,
    auroc_verdict,
    check_detector_parity,
    check_parity,
    prob_parity,
    sample_set,
)
from edgeecg.export.sam import export_sam
from edgeecg.export.tensorrt_build import build_plan, detect_target, run_plan
from edgeecg.sidecar import read_json, read_sidecar

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportConfig:
    """What `edgeecg-export` builds."""

    checkpoints: tuple[str, ...]
    """Fold checkpoints: directories (every *.safetensors) and/or files."""
    out: str
    """The bundle directory to (re)place."""
    detector: str | None = None
    """Detector: a .pt from our own detector training, or an .onnx."""
    detector_imgsz: int = 640
    """Detector input size when exporting from a .pt (the largest, with the rect letterbox)."""
    detector_letterbox: str | None = None
    """"square" or "rect" (see `export_detector`); None: as the .json beside an .onnx says, else square."""
    verifier: str | None = None
    """The verifier: the verifier.onnx of `edgeecg-train verifier` (its verifier.json beside it)."""
    corner_model: str | None = None
    """Corner model: the corners.onnx of `edgeecg-train corners` (its corners.json beside it)."""
    sam: str | None = None
    """SAM / MobileSAM checkpoint (optional)."""
    sam_type: str = "vit_t"
    """Registry name of the SAM model: vit_t (MobileSAM), vit_b, vit_l, vit_h."""
    precision: str = "fp16"
    """fp32: FP32 ONNX only; fp16: also the mixed FP16 ONNX (what GPU plans are built from)."""
    variants: tuple[str, ...] = ()
    """Classifier variants to write, any of fp32, fp16, int8w (overrides `precision`; empty: by precision).
    The FP32 export is always made and checked; without fp32 here its files are left out of the bundle."""
    detector_weights: str = "fp32"
    """fp32, or int8: store the detector's Conv weights as per-channel int8 (FP32 compute)."""
    fused: bool = False
    """Also write one fused ensemble graph."""
    grouped: bool = True
    """Fuse by grouping (one network of K-fold width, `export.fused.grouped_module`) where the architecture
    allows; off: the members side by side in one graph."""
    engines: bool = False
    """Build TensorRT plans here (needs tensorrt and a GPU; skipped with a message otherwise)."""
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    """Batch sizes the plans must run."""
    workspace_mb: int = 1024
    """TensorRT workspace limit (MiB)."""
    timing_cache: str | None = None
    """Directory of TensorRT timing caches (default ~/.cache/edgeecg/tensorrt)."""
    thresholds: str | None = None
    """JSON file of per-class thresholds from training's out-of-fold predictions."""
    parity_data: str | None = None
    """Labelled dataset dir for parity checks (default: ECG-like synthetic pages and noise)."""
    parity_samples: int = PARITY_SAMPLES
    """How many samples the parity checks use."""
    command: str = ""
    """The command line, for provenance."""


#: Classifier variants export_bundle can write, in manifest order.
VARIANTS: tuple[str, ...] = ("fp32", "fp16", "int8w")


def _noop(_msg: str) -> None:
    pass


def resolve_variants(cfg: ExportConfig) -> tuple[str, ...]:
    """The classifier variants `cfg` asks for, in manifest order; UsageError for unknown or none."""
    if not cfg.variants:
        if cfg.precision not in ("fp32", "fp16"):
            raise UsageError(f"precision must be fp32 or fp16, not {cfg.precision!r}")
        return ("fp32", "fp16") if cfg.precision == "fp16" else ("fp32",)
    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    return tuple(v for v in VARIANTS if v in cfg.variants)


# -- thresholds ---------------------------------------------------------------------------------------


def read_thresholds(path: str | Path | None) -> tuple[list[float], str]:
    """Per-class thresholds and how they were chosen, from training's JSON; (0.5 each, 'default-0.5') if None.

    Accepted shapes: a list of 5 numbers; {label: number}; or {"thresholds": <either>, "method": "..."}.
    """
    if path is None:
        return [0.5] * len(LABELS), "default-0.5"
    path = Path(path)
    return _parse_thresholds(read_json(path, UsageError), str(path))


def _parse_thresholds(data: Any, path: str) -> tuple[list[float], str]:
    method = "from-file"
    if isinstance(data, dict) and "thresholds" in data:
        method = str(data.get("method") or data.get("threshold_method") or method)
        data = data["thresholds"]
    if isinstance(data, dict):
        missing = [k for k in LABELS if k not in data]
        if missing:
            raise UsageError(f"thresholds {path} lack {', '.join(missing)}")
        data = [data[k] for k in LABELS]
    if not isinstance(data, list) or len(data) != len(LABELS):
        raise UsageError(f"thresholds {path} must give {len(LABELS)} numbers ({', '.join(LABELS)})")
    try:
        values = [float(v) for v in data]
    except (TypeError, ValueError):
        raise UsageError(f"thresholds {path} must be numbers") from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise UsageError(f"thresholds {path} must lie in [0, 1]")
    return values, method


def _onnx_with_sidecar(
    src: Path, bundle_dir: Path, name: str, option: str, maker: str, fields: Any, needs: str
) -> dict[str, Any]:
    """Copy a small model's ONNX into the bundle as `name`; its manifest entry from `fields(meta)`, where
    meta is the JSON its trainer wrote beside it (a KeyError, TypeError or ValueError there: "lacks `needs`")."""
    needs_files = f"{option} {src}: needs an .onnx with its .json beside it ({maker})"
    if src.suffix != ".onnx" or not src.is_file():
        raise UsageError(needs_files)
    meta = read_sidecar(src, error=UsageError, missing=needs_files)
    try:
        entry_fields = fields(meta)
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{src.with_suffix('.json')} lacks {needs}") from None
    shutil.copyfile(src, bundle_dir / name)
    return file_entry(bundle_dir, name, **entry_fields)


def _corner_model_entry(src: Path, bundle_dir: Path) -> dict[str, Any]:
    """Copy the corner model ONNX into the bundle; its manifest entry from the corners.json beside it."""
    return _onnx_with_sidecar(
        src, bundle_dir, "corners.onnx", "--corner-model", "edgeecg-train corners",
        lambda meta: {
            "kind": str(meta.get("kind", "corner-regressor")),
            "input_size": [int(v) for v in meta["input_size"]],
            "expand": float(meta["expand"]),
            "passes": int(meta.get("passes", 1)),
            "validation": meta.get("validation"),
        },
        "input_size or expand",
    )  # fmt: skip


def _verifier_entry(src: Path, bundle_dir: Path) -> dict[str, Any]:
    """Copy the verifier ONNX into the bundle; its manifest entry from the verifier.json beside it."""
    return _onnx_with_sidecar(
        src, bundle_dir, "verifier.onnx", "--verifier", "edgeecg-train verifier",
        lambda meta: {
            "kind": str(meta.get("kind", "ecg-verifier")),
            "input_size": [int(v) for v in meta["input_size"]],
            "threshold": float(meta["threshold"]),
            "outputs": [str(o) for o in meta.get("outputs", ["ecg"])],
            "calibration": meta.get("calibration"),
            "preprocess": meta.get("preprocess"),
        },
        "input_size or threshold",
    )  # fmt: skip


def _detector_entry(
    cfg: ExportConfig, bundle_dir: Path, checks: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Export `cfg.detector` into the bundle as detector.onnx (int8-stored weights with
    `cfg.detector_weights`, whose parity goes into `checks`); its manifest entry."""

    progress(f"detector {Path(cfg.detector).name} → ONNX")
    fields = export_detector(
        cfg.detector, bundle_dir / "detector.onnx", cfg.detector_imgsz, cfg.detector_letterbox
    )
    checks.pop("detector_int8_vs_fp32_onnxruntime", None)  # a replaced detector's check is not this one's
    if cfg.detector_weights == "int8":
        checks["detector_int8_vs_fp32_onnxruntime"] = _int8_detector(
            bundle_dir, "detector.onnx", fields["input_size"], progress
        )
        fields["weights"] = "int8"
    return file_entry(bundle_dir, "detector.onnx", **fields)


def _preprocess(trained: Any) -> dict[str, Any]:
    """The manifest's preprocess section: the runtime defaults, with training's CLAHE settings when known."""
    section = json.loads(json.dumps(DEFAULT_PREPROCESS))  # deep copy
    if isinstance(trained, dict):
        if trained.get("clahe_clip") is not None:
            section["clahe"]["clip_limit"] = float(trained["clahe_clip"])
        if trained.get("clahe_tile") is not None:
            tile = trained["clahe_tile"]
            section["clahe"]["tile_grid"] = [int(tile), int(tile)] if isinstance(tile, int) else list(tile)
        if trained.get("mode"):
            section["trained_with"] = str(trained["mode"])
            if trained["mode"] == "warp_clahe":  # trained on flattened sheets: serve flattened sheets
                section["mode"] = "warp"
            if trained["mode"] == "edgeecg":  # trained through the runtime chain: serve the same chain
                section["mode"] = str(trained.get("runtime_mode") or section["mode"])
                section["corners"] = str(trained.get("runtime_corners") or section["corners"])
                # checkpoints from before corner refinement existed were trained without it
                section["refine"] = bool(trained.get("runtime_refine", False))
    return section


# -- ensemble outputs in ONNX Runtime -----------------------------------------------------------------


def _lineage_data(sidecar: dict[str, Any]) -> Any:
    """Every dataset behind a member, each once, oldest first: its lineage (stage I pages, then stage II
    photos) where the sidecar has one, else (older checkpoints) its config's sources."""
    steps = sidecar.get("lineage")
    if not steps:
        return (sidecar.get("config") or {}).get("sources", sidecar.get("data"))
    seen, out = set(), []
    for step in steps:
        for d in step.get("data") or []:
            key = (d or {}).get("path")
            if d and key not in seen:
                seen.add(key)
                out.append(d)
    return out


def variant_probs(
    bundle_dir: Path, variant: dict[str, Any], batch: np.ndarray, use_fused: bool
) -> np.ndarray:
    """Ensemble probabilities [N, C] of one classifier variant in ONNX Runtime (CPU), loaded as the runtime
    loads it (an int8-weight variant with its session config)."""

    config = ort_session_config(variant)
    if use_fused:
        out = _ort_run(bundle_dir / variant["fused"]["file"], batch, config)
        return out[OUTPUTS["mean"]].astype(np.float64)
    logits = [_ort_run(bundle_dir / m["file"], batch, config)["logits"] for m in variant["members"]]
    return np.mean([sigmoid(x) for x in logits], axis=0)


def _ort_run(path: Path, batch: np.ndarray, session_config: dict[str, str] | None) -> dict[str, np.ndarray]:

    with OnnxRuntimeRunner(path, providers=["CPUExecutionProvider"], session_config=session_config) as runner:
        return runner.infer(batch)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


# -- the export --------------------------------------------------------------------------------------


def _converter(precision: str) -> Callable[[Any], Any]:
    """The ONNX-to-ONNX conversion that makes a `precision` variant file from an FP32 (or, for fp32, an
    int8-weight) one."""
    if precision == "fp16":
        return convert_to_mixed_fp16
    if precision == "int8w":
        return quantize_weights_int8

    return dequantize_weights  # fp32 from int8-stored weights: the values ONNX Runtime computes from them


def _write_converted(tmp: Path, entry: dict[str, Any], precision: str) -> dict[str, Any]:
    """Convert one ONNX entry of the bundle into the `precision` variant under `precision`/; its manifest entry."""

    onnx = require("onnx")
    rel = f"{precision}/{Path(entry['file']).name}"
    (tmp / precision).mkdir(exist_ok=True)
    onnx.save(_converter(precision)(onnx.load(str(tmp / entry["file"]))), str(tmp / rel))
    extra = {k: v for k, v in entry.items() if k not in ("file", "sha256", "weights")}
    extra["precision"] = precision
    if precision == "int8w":
        extra["weights"] = "int8"
    return file_entry(tmp, rel, **extra)


def _derived_variant(tmp: Path, ref: dict[str, Any], precision: str) -> dict[str, Any]:
    """The `precision` variant whose files are the conversions of each file of the variant `ref`."""
    out: dict[str, Any] = {"members": [_write_converted(tmp, m, precision) for m in ref["members"]]}
    if ref.get("fused"):
        out["fused"] = _write_converted(tmp, ref["fused"], precision)
    if precision == "int8w":
        out["weights"] = "int8"
    return out


#: What each derived variant is, for the progress log.
_DERIVED_WHAT = {
    "fp32": "FP32 ONNX (the int8-stored weights folded back into FP32 initializers)",
    "fp16": "mixed FP16 ONNX (LayerNorm, reductions, sigmoid and head in FP32)",
    "int8w": "int8-weight ONNX (per-channel int8 Conv/Gemm/MatMul weights, FP32 compute)",
}
_TITLE = {"fp32": "FP32", "fp16": "FP16", "int8w": "int8w"}


def _checked_variant(
    tmp: Path,
    source: dict[str, Any],
    precision: str,
    ref: tuple[str, dict[str, Any]],
    samples: tuple[np.ndarray, np.ndarray | None],
    checks: dict[str, Any],
    progress: Progress,
) -> dict[str, Any]:
    """Derive the `precision` variant from `source`, check it against the variant `ref` (name, entry) in ONNX
    Runtime on `samples` (batch, labels), members and fused graph alike; the figures go into
    `checks["<precision>_vs_<ref name>_onnxruntime"]`. Raises EdgeECGError when parity fails."""

    progress(_DERIVED_WHAT[precision])
    var = _derived_variant(tmp, source, precision)
    ref_name, ref_var = ref
    batch, labels = samples
    figures_of = checks[f"{precision}_vs_{ref_name}_onnxruntime"] = {}
    for use_fused in (False, True) if var.get("fused") else (False,):
        figures = prob_parity(
            variant_probs(tmp, ref_var, batch, use_fused), variant_probs(tmp, var, batch, use_fused), labels
        )
        what = "fused" if use_fused else "members"
        figures_of[what] = figures
        title = _TITLE[precision]
        progress(
            f"      {title} {what} vs {_TITLE[ref_name]} (ONNX Runtime CPU): max abs prob diff "
            f"{figures['max_abs_prob_diff']:.1e}, {auroc_verdict(figures)}"
        )
        check_parity(figures, f"{title} ONNX ({what})")
    return var


def _int8_detector(tmp: Path, rel: str, size: list[int], progress: Progress) -> dict[str, Any]:
    """Quantize the exported detector's weights in place; return its parity figures against FP32."""

    onnx = require("onnx")
    path = tmp / rel
    fp32 = tmp / f"{rel}.fp32.tmp"
    path.replace(fp32)
    onnx.save(quantize_weights_int8(onnx.load(str(fp32))), str(path))
    with OnnxRuntimeRunner(fp32, providers=["CPUExecutionProvider"]) as ref_runner:
        x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)  # the detector takes 0..1 RGB
        want = ref_runner.infer(x)
    got = _ort_run(path, x, INT8_WEIGHTS_SESSION_CONFIG)
    fp32.unlink()
    diff = max(float(np.abs(got[k] - want[k]).max()) for k in want)
    scale = max(float(np.abs(want[k]).max()) for k in want)
    progress(
        f"      int8 detector vs FP32 (ONNX Runtime CPU): max abs output diff {diff:.2e} (outputs up to {scale:.1f})"
    )
    return {"max_abs_output_diff": diff, "max_abs_output": scale}


def _portable(node: Any, root: Path | None = None) -> Any:
    """`node` with every absolute path string in it made portable: relative to `root` (default: the working
    directory, the repository when the recipes run) where it lies inside it, else the bare file name. The
    provenance names files this way, beside their sha256, not by the building machine's absolute paths."""
    root = (root or Path.cwd()).resolve()
    if isinstance(node, dict):
        return {k: _portable(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_portable(v, root) for v in node]
    if isinstance(node, str) and "\n" not in node and Path(node).is_absolute():
        path = Path(node)
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return node


def export_bundle(cfg: ExportConfig, progress: Progress = _noop) -> dict[str, Any]:
    """Build the bundle `cfg.out` from `cfg`; return its manifest. The sections, in order: the members to
    ONNX (checked against torch), the fused graph, the derived variants (checked against FP32), the
    pre-processing models, provenance, the manifest, and TensorRT plans where this machine can build them.

    Raises:
        UsageError: bad arguments (missing files, bad thresholds).
        EdgeECGError: a check failed (ONNX differs from torch, FP16 or plans lose parity, bad checkpoint).
    """

    wanted = resolve_variants(cfg)
    if cfg.detector_weights not in ("fp32", "int8"):
        raise UsageError(f"detector weights must be fp32 or int8, not {cfg.detector_weights!r}")
    if cfg.engines and not {"fp32", "fp16"} & set(wanted):
        raise UsageError(
            "TensorRT plans (--engines) are built from an fp16 or fp32 variant: add one to --variants"
        )
    members = find_checkpoints(list(cfg.checkpoints))
    thresholds, threshold_method = read_thresholds(cfg.thresholds)
    side_thr = members[0].sidecar.get("thresholds")
    if cfg.thresholds is None and isinstance(side_thr, dict | list):
        # Training stores its OOF thresholds in each ensemble member's sidecar; use them when no file is given.
        thresholds, threshold_method = _parse_thresholds(side_thr, f"{members[0].weights.name} sidecar")
    input_cfg = {"name": "image", "layout": "NCHW", "scale": 255.0, **members[0].input}
    checks: dict[str, Any] = {"members": []}

    with AtomicBundleDir(cfg.out) as tmp:
        ref32, params = _fp32_section(cfg, members, tmp, input_cfg, checks, progress)
        variants = _variants_section(cfg, wanted, ref32, tmp, input_cfg, checks, progress)
        parts = _preprocessing_section(cfg, tmp, checks, progress)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "labels": list(LABELS),
            "classifier": {
                "input": input_cfg,
                "output": "logits",
                "combine": "mean",
                "thresholds": thresholds,
                "threshold_method": threshold_method,
                "variants": variants,
                "model": {"arch": members[0].arch, "params": params},
            },
            **parts,
            "preprocess": _preprocess(members[0].sidecar.get("preprocess")),
            "engines": [],
            "provenance": _provenance(cfg, members),
            "metrics": _json_safe(
                {
                    "folds": [{"fold": m.fold, **(m.sidecar.get("metrics") or {})} for m in members],
                    "export_checks": checks,
                }
            ),
        }
        write_manifest(tmp, manifest)
        verify(tmp, manifest)
        if cfg.engines:
            _engines_section(cfg, tmp, manifest, progress)
    return manifest


def _fp32_section(
    cfg: ExportConfig,
    members: list[Any],
    tmp: Path,
    input_cfg: dict[str, Any],
    checks: dict,
    progress: Progress,
) -> tuple[dict[str, Any], int]:
    """Every member to FP32 ONNX (checked against torch) and, with `cfg.fused`, the fused graph (checked
    against the members): the reference variant, and the parameters of one member."""

    models, fp32_members, params = [], [], 0
    for i, ckpt in enumerate(members, 1):
        fold = ckpt.fold if ckpt.fold is not None else i - 1
        progress(f"[{i}/{len(members)}] {ckpt.weights.name}: {ckpt.arch} fold {fold} → ONNX (opset 17)")
        model = load_member(ckpt)
        params = sum(int(p.numel()) for p in model.parameters())
        rel = f"fp32/fold{fold}.onnx"
        diff = export_member(model, tmp / rel, input_cfg)
        progress(f"      checked against torch: max abs logit diff {diff:.1e}")
        fp32_members.append(file_entry(tmp, rel, fold=fold, precision="fp32"))
        checks["members"].append({"fold": fold, "max_abs_logit_diff_vs_torch": diff})
        models.append(model)
    ref32: dict[str, Any] = {"members": fp32_members}
    if cfg.fused:
        progress(f"fusing {len(models)} members into one graph")
        _, fusion = export_fused(models, tmp / "fp32/ensemble.onnx", input_cfg, grouped=cfg.grouped)
        diff = check_fused(
            tmp / "fp32/ensemble.onnx", [tmp / m["file"] for m in fp32_members], check_inputs(input_cfg)
        )
        progress(f"      {fusion} fusion, checked against separate members: max abs prob diff {diff:.1e}")
        ref32["fused"] = file_entry(
            tmp,
            "fp32/ensemble.onnx",
            precision="fp32",
            fusion=fusion,
            outputs={"mean": OUTPUTS["mean"], "members": OUTPUTS["members"]},
        )
        checks["fused_vs_members_max_abs_prob_diff"] = diff
    return ref32, params


def _variants_section(
    cfg: ExportConfig,
    wanted: tuple[str, ...],
    ref32: dict[str, Any],
    tmp: Path,
    input_cfg: dict[str, Any],
    checks: dict,
    progress: Progress,
) -> dict[str, Any]:
    """The classifier variants asked for: FP32 as exported, FP16 and int8 storage derived from it and checked
    against it on the parity samples; the FP32 files leave the bundle when not asked for."""

    variants: dict[str, Any] = {"fp32": ref32} if "fp32" in wanted else {}
    samples = None
    for key in ("fp16", "int8w"):
        if key in wanted:
            samples = samples or sample_set(input_cfg, cfg.parity_samples, cfg.parity_data)
            variants[key] = _checked_variant(tmp, ref32, key, ("fp32", ref32), samples, checks, progress)
    if "fp32" not in wanted:
        shutil.rmtree(tmp / "fp32")  # the reference only: the bundle ships the derived variants
    return variants


def _preprocessing_section(cfg: ExportConfig, tmp: Path, checks: dict, progress: Progress) -> dict[str, Any]:
    """The manifest's detector, verifier, corner_model and sam entries (None where not given)."""
    parts: dict[str, Any] = {"detector": None, "verifier": None, "corner_model": None, "sam": None}
    if cfg.detector:
        parts["detector"] = _detector_entry(cfg, tmp, checks, progress)
    if cfg.verifier:
        progress(f"verifier {Path(cfg.verifier).name}")
        parts["verifier"] = _verifier_entry(Path(cfg.verifier), tmp)
    if cfg.corner_model:
        progress(f"corner model {Path(cfg.corner_model).name}")
        parts["corner_model"] = _corner_model_entry(Path(cfg.corner_model), tmp)
    if cfg.sam:
        progress(f"SAM {Path(cfg.sam).name} ({cfg.sam_type}) → encoder and decoder ONNX")
        parts["sam"] = export_sam(cfg.sam, tmp / "sam", cfg.sam_type, bundle_dir=tmp)
    return parts


def _provenance(cfg: ExportConfig, members: list[Any]) -> dict[str, Any]:
    """Command, version, time, the checkpoints and every input file with its sha256, the data lineage."""
    provenance: dict[str, Any] = {
        "command": cfg.command,
        "edgeecg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoints": [
            {
                "file": str(m.weights.resolve()),
                "sha256": m.sha256,
                "fold": m.fold if m.fold is not None else i,
            }
            for i, m in enumerate(members)
        ],
        "seed": (members[0].sidecar.get("config") or {}).get("seed", members[0].sidecar.get("seed")),
        "data": _lineage_data(members[0].sidecar),
        "lineage": members[0].sidecar.get("lineage") or None,
    }
    for key, src in (
        ("detector", cfg.detector),
        ("verifier", cfg.verifier),
        ("corner_model", cfg.corner_model),
        ("sam", cfg.sam),
        ("thresholds", cfg.thresholds),
    ):
        if src:
            provenance[key] = {"file": str(Path(src).resolve()), "sha256": sha256_file(src)}
    return _portable(provenance)


def _engines_section(cfg: ExportConfig, tmp: Path, manifest: dict[str, Any], progress: Progress) -> None:
    """TensorRT plans where this machine can build them; elsewhere one line saying how to build them."""
    reason = engine_support()
    if reason:
        progress(
            f"TensorRT plans skipped: {reason}. The ONNX bundle is complete; build plans on the "
            f"target with: edgeecg-export --engines --bundle {cfg.out}"
        )
        return
    build_engines(tmp, manifest, cfg, progress)
    write_manifest(tmp, manifest)
    verify(tmp, manifest)


# -- TensorRT ----------------------------------------------------------------------------------------


def engine_support() -> str | None:
    """None when TensorRT plans can be built here, else why not (one line)."""
    try:
        detect_target()
    except (MissingExtraError, BackendError) as err:
        return str(err)
    return None


def _slug(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", target.replace(":", ""))


def build_engines(
    bundle_dir: Path, manifest: dict[str, Any], cfg: ExportConfig, progress: Progress = _noop
) -> None:
    """Build plans for the classifier (fused graph, else each member) and the detector into `bundle_dir`.

    Parity against ONNX Runtime FP32 is checked on a sample set and stored in each classifier plan's entry;
    `manifest["engines"]` is updated in place (plans of other GPUs / TensorRT versions are kept).
    """

    clf = manifest["classifier"]
    precision = next((p for p in ("fp16", "fp32") if p in clf["variants"]), None)
    if precision is None:
        raise BackendError(
            "TensorRT plans are built from an fp16 or fp32 classifier variant; this bundle has only "
            f"{', '.join(clf['variants'])}: export one with --variants fp16 (or fp32)"
        )
    target = detect_target()
    # The parity reference: FP32 ONNX where the bundle has it, else its int8-weight variant (FP32 compute).
    variant = clf["variants"][precision]
    ref_variant = clf["variants"].get("fp32") or clf["variants"].get("int8w") or variant
    ref_config = ort_session_config(ref_variant)
    use_fused = bool(variant.get("fused"))
    jobs: list[tuple[str, str]] = (
        [("fused", variant["fused"]["file"])]
        if use_fused
        else [(f"member:{m['fold']}", m["file"]) for m in variant["members"]]
    )
    progress(
        f"TensorRT {target.tensorrt} on {target.gpu} (sm {target.compute_capability}), {precision} plans"
    )
    batch, labels = sample_set(clf["input"], cfg.parity_samples, cfg.parity_data)
    new: list[dict[str, Any]] = []
    plan_probs: list[np.ndarray] = []
    for name, rel in jobs:
        plan_rel = f"plans/{target.key}/{_slug(name)}.{precision}.plan"
        progress(f"  building {plan_rel} from {rel} (batch {list(cfg.batch_sizes)})")
        info = build_plan(
            bundle_dir / rel,
            bundle_dir / plan_rel,
            list(cfg.batch_sizes),
            cfg.workspace_mb,
            cfg.timing_cache,
            target,
        )
        out = run_plan(bundle_dir / plan_rel, batch, max(cfg.batch_sizes))
        if use_fused:
            got = out[OUTPUTS["mean"]].astype(np.float64)
            ref = _ort_run(bundle_dir / ref_variant["fused"]["file"], batch, ref_config)[OUTPUTS["mean"]]
        else:
            got = sigmoid(out["logits"])
            fold = int(name.split(":")[1])
            ref_file = next(m["file"] for m in ref_variant["members"] if m["fold"] == fold)
            ref = sigmoid(_ort_run(bundle_dir / ref_file, batch, ref_config)["logits"])
        plan_probs.append(got)
        figures = _json_safe(prob_parity(ref, got, labels))
        progress(
            f"    parity vs ONNX Runtime FP32: max abs prob diff {figures['max_abs_prob_diff']:.1e}, "
            f"{auroc_verdict(figures)}"
        )
        check_parity(figures, f"TensorRT plan {plan_rel}")
        new.append(
            file_entry(
                bundle_dir, plan_rel, target=name, precision=precision, source=rel, parity=figures, **info
            )
        )
    if not use_fused and len(plan_probs) > 1:
        ens = _json_safe(
            prob_parity(
                variant_probs(bundle_dir, ref_variant, batch, False), np.mean(plan_probs, axis=0), labels
            )
        )
        check_parity(ens, "TensorRT member ensemble")
        for entry in new:
            entry["ensemble_parity"] = ens
    det = manifest.get("detector")
    if det:
        plan_rel = f"plans/{target.key}/detector.fp32.plan"
        progress(f"  building {plan_rel} from {det['file']}")
        src = bundle_dir / det["file"]
        if det.get("weights") == "int8":
            # Plans take plain FP32 weights: fold the int8 storage back (same values as ONNX Runtime uses).
            src = _dequantized_copy(src, bundle_dir / f"{plan_rel}.src.onnx")
        try:
            info = build_plan(
                src, bundle_dir / plan_rel, [1], cfg.workspace_mb, cfg.timing_cache, target,
                max_hw=tuple(det["input_size"]), stride=max(det.get("strides", [32])),
            )  # fmt: skip
        finally:
            if src != bundle_dir / det["file"]:
                src.unlink(missing_ok=True)
        h, w = det["input_size"]
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)  # detector takes 0..1 RGB
        got = run_plan(bundle_dir / plan_rel, x, 1)
        want = _ort_run(bundle_dir / det["file"], x, ort_session_config(det))
        diff = max(float(np.abs(got[k] - want[k]).max()) for k in got)
        progress(f"    parity vs ONNX Runtime: max abs output diff {diff:.2e}")
        check_detector_parity(diff, want, f"TensorRT plan {plan_rel}")
        new.append(
            file_entry(
                bundle_dir,
                plan_rel,
                target="detector",
                precision="fp32",
                source=det["file"],
                parity={"max_abs_output_diff": diff},
                **info,
            )
        )
    keys = {_plan_key(e) for e in new}
    manifest["engines"] = [e for e in manifest.get("engines", []) if _plan_key(e) not in keys] + new


def _plan_key(e: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two plan entries the same plan: a rebuild replaces, other machines' plans stay."""
    fields = ("target", "gpu", "compute_capability", "sm_count", "tensorrt", "precision")
    return tuple(e.get(k) for k in fields)


def _dequantized_copy(src: Path, dst: Path) -> Path:
    """Write `src` with its int8-stored weights folded back into FP32 initializers to `dst`."""

    onnx = require("onnx")
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(dequantize_weights(onnx.load(str(src))), str(dst))
    return dst


def derive_variants(
    bundle_dir: Path, manifest: dict[str, Any], wanted: tuple[str, ...], cfg: ExportConfig, progress: Progress
) -> dict[str, Any]:
    """Add classifier variants to a bundle directory in place, from the variants it has, without checkpoints.

    FP32 comes from an int8w variant by folding its int8-stored weights back (the values ONNX Runtime computes
    from them), FP16 and int8w from FP32. Every new variant is checked in ONNX Runtime (CPU) against the
    bundle's own classifier (fp32 where present, else int8w); the figures go into the manifest's
    `metrics.export_checks`. A temporary FP32 variant made only to derive from is removed again. Updates
    `manifest` in place (not written); returns it.

    Raises:
        UsageError: an unknown variant, or nothing to derive from.
        EdgeECGError: a derived variant fails parity.
    """

    clf = manifest["classifier"]
    have = clf["variants"]
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    ref_name = "fp32" if "fp32" in have else "int8w" if "int8w" in have else None
    if ref_name is None:
        raise UsageError(f"cannot derive variants from {', '.join(have)}: the bundle needs fp32 or int8w")
    ref = have[ref_name]
    checks = manifest.setdefault("metrics", {}).setdefault("export_checks", {})
    samples = sample_set(clf["input"], cfg.parity_samples, cfg.parity_data)
    fp32 = ref
    todo = [v for v in VARIANTS if v in wanted and v not in have]
    if ref_name == "int8w" and (set(todo) - {"fp32"}):
        todo = ["fp32", *[v for v in todo if v != "fp32"]]  # fp16 is derived from the unfolded FP32
    new: dict[str, Any] = {}
    for key in todo:
        source = ref if key == "fp32" else fp32
        new[key] = _checked_variant(bundle_dir, source, key, (ref_name, ref), samples, checks, progress)
        if key == "fp32":
            fp32 = new[key]
    if "fp32" in new and "fp32" not in wanted:
        del new["fp32"]
        shutil.rmtree(bundle_dir / "fp32")  # made only to derive from
        checks.pop(f"fp32_vs_{ref_name}_onnxruntime", None)
    clf["variants"] = {k: {**have, **new}[k] for k in VARIANTS if k in have or k in new}
    return manifest


def derive_bundle(bundle: str | Path, cfg: ExportConfig, progress: Progress = _noop) -> dict[str, Any]:
    """Copy an existing bundle to `cfg.out` with the classifier variants `cfg.variants` added (`derive_variants`),
    without checkpoints and without a GPU: e.g. the FP16 graph that TensorRT plans are built from.

    Raises:
        BundleError: the source bundle is missing or does not verify.
        UsageError: no --out, --out is the source bundle, or no variant to add.
        EdgeECGError: a derived variant fails parity.
    """
    src = Path(bundle)
    if not cfg.out:
        raise UsageError("--out BUNDLE is required (the bundle with the variants added)")
    if Path(cfg.out).resolve() == src.resolve():
        raise UsageError("--out must be a new directory, not the source bundle")
    if not cfg.variants:
        raise UsageError("--variants names the classifier variants to add (fp32, fp16, int8w)")
    manifest = load_manifest(src)
    verify(src, manifest)
    with AtomicBundleDir(cfg.out) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        derive_variants(tmp, manifest, tuple(cfg.variants), cfg, progress)
        manifest.setdefault("provenance", {})["derived"] = _portable(
            {
                "command": cfg.command,
                "from_bundle": str(src.resolve()),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "variants": list(cfg.variants),
            }
        )
        write_manifest(tmp, manifest)
        verify(tmp, manifest)
    return manifest


def add_engines(bundle: str | Path, cfg: ExportConfig, progress: Progress = _noop) -> dict[str, Any]:
    """Build plans for an existing bundle on this machine (the Jetson workflow); atomic like the export.

    A bundle with only an int8w classifier (the shipped default) first gets the mixed FP16 variant derived
    from it (`derive_variants`), which the plans are then built from.

    Raises:
        BundleError: the bundle is missing or does not verify.
        BackendError / MissingExtraError: no GPU or no TensorRT here.
    """
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    verify(bundle, manifest)
    reason = engine_support()
    if reason:
        raise BackendError(f"cannot build TensorRT plans here: {reason}")
    with AtomicBundleDir(bundle) as tmp:
        shutil.copytree(bundle, tmp, dirs_exist_ok=True)
        if not {"fp16", "fp32"} & set(manifest["classifier"]["variants"]):
            progress("the classifier has no fp16 or fp32 variant: deriving the mixed FP16 ONNX to build from")
            derive_variants(tmp, manifest, ("fp16",), cfg, progress)
        build_engines(tmp, manifest, cfg, progress)
        manifest.setdefault("provenance", {})["engines_command"] = cfg.command
        write_manifest(tmp, manifest)
        verify(tmp, manifest)
    return manifest


def swap_preprocessing(bundle: str | Path, cfg: ExportConfig, progress: Progress = _noop) -> dict[str, Any]:
    """Copy an existing bundle to `cfg.out` with its paper detector, verifier and/or corner model replaced
    by `cfg.detector`, `cfg.verifier`, `cfg.corner_model`; the classifier, its thresholds and its plans are
    kept as they are. For a pre-processing chain retrained without the classifier's checkpoints at hand.

    The held-out figures a bundle records (`metrics.held_out_test`) were measured through the old chain:
    they move to `metrics.before_swap`, so nobody reads them as the new chain's. A replaced detector's
    TensorRT plans are dropped (rebuild them with `--engines --bundle`).

    Raises:
        BundleError: the source bundle is missing or does not verify.
        UsageError: nothing to replace, no --out, or --out is the source bundle itself.
    """
    src = Path(bundle)
    parts = {"detector": cfg.detector, "verifier": cfg.verifier, "corner_model": cfg.corner_model}
    if not any(parts.values()):
        raise UsageError(
            "--bundle without --engines replaces pre-processing models: give --detector, --verifier or --corner-model"
        )
    if not cfg.out:
        raise UsageError("--out BUNDLE is required (the bundle with the models replaced)")
    if Path(cfg.out).resolve() == src.resolve():
        raise UsageError("--out must be a new directory, not the source bundle")
    manifest = load_manifest(src)
    verify(src, manifest)
    with AtomicBundleDir(cfg.out) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for key, new in parts.items():
            old = manifest.get(key)
            if new and old:  # the old file goes unless the new one takes its name
                (tmp / old["file"]).unlink(missing_ok=True)
        metrics = manifest.setdefault("metrics", {})
        if cfg.detector:
            checks = metrics.setdefault("export_checks", {})
            manifest["detector"] = _detector_entry(cfg, tmp, checks, progress)
            kept = []
            for e in manifest.get("engines", []):
                if e.get("target") == "detector":
                    (tmp / e["file"]).unlink(missing_ok=True)
                    progress(f"dropped the old detector's plan {e['file']}")
                else:
                    kept.append(e)
            manifest["engines"] = kept
        if cfg.verifier:
            progress(f"verifier {Path(cfg.verifier).name}")
            manifest["verifier"] = _verifier_entry(Path(cfg.verifier), tmp)
        if cfg.corner_model:
            progress(f"corner model {Path(cfg.corner_model).name}")
            manifest["corner_model"] = _corner_model_entry(Path(cfg.corner_model), tmp)
        prov = manifest.setdefault("provenance", {})
        prov["swapped"] = _portable(
            {
                "command": cfg.command,
                "from_bundle": str(src.resolve()),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **{
                    k: {"file": str(Path(v).resolve()), "sha256": sha256_file(v)}
                    for k, v in parts.items()
                    if v
                },
            }
        )
        if "held_out_test" in metrics:
            metrics["before_swap"] = {"held_out_test": metrics.pop("held_out_test")}
        write_manifest(tmp, manifest)
        verify(tmp, manifest)
    return manifest


# -- summary -----------------------------------------------------------------------------------------


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def summary(bundle_dir: str | Path, manifest: dict[str, Any]) -> str:
    """Human-readable summary: files with sizes and sha256 prefixes, then the parity figures."""
    bundle_dir = Path(bundle_dir)
    lines = [f"bundle {bundle_dir} ({manifest['format']})"]
    for entry in iter_file_entries(manifest):
        size = (bundle_dir / entry["file"]).stat().st_size
        lines.append(f"  {entry['file']:<48} {_size(size):>10}  sha256 {entry['sha256'][:12]}")
    checks = manifest.get("metrics", {}).get("export_checks", {})
    worst = max((m["max_abs_logit_diff_vs_torch"] for m in checks.get("members", [])), default=None)
    if worst is not None:
        lines.append(f"  ONNX vs torch: max abs logit diff {worst:.1e}")
    if "fused_vs_members_max_abs_prob_diff" in checks:
        lines.append(
            f"  fused vs members: max abs prob diff {checks['fused_vs_members_max_abs_prob_diff']:.1e}"
        )
    for key, figures in checks.items():
        match = re.fullmatch(r"(\w+)_vs_(\w+)_onnxruntime", key)
        if not match or match[1] not in _TITLE:
            continue  # the detector's figures, below
        title, ref = _TITLE[match[1]], _TITLE.get(match[2], match[2])
        for what, fig in figures.items():
            lines.append(
                f"  {title} vs {ref} ({what}, ONNX Runtime): max abs prob diff {fig['max_abs_prob_diff']:.1e}, "
                f"macro {auroc_verdict(fig)} ({fig['samples']} samples, labels {fig['labels']})"
            )
    det = checks.get("detector_int8_vs_fp32_onnxruntime")
    if det:
        lines.append(
            f"  int8 detector vs FP32 (ONNX Runtime): max abs output diff {det['max_abs_output_diff']:.2e}"
        )
    for e in manifest.get("engines", []):
        par = e.get("parity", {})
        figure = par.get("max_abs_prob_diff", par.get("max_abs_output_diff"))
        lines.append(
            f"  plan {e['target']} on {e['gpu']} / TRT {e['tensorrt']} ({e['precision']}): max abs diff {figure}"
        )
    return "\n".join(lines)
