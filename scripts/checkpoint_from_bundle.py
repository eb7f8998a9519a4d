"""Rebuild a training checkpoint (safetensors + sidecar) from a bundle's classifier member, for fine-tuning
without the checkpoints the bundle was exported from (e.g. the shipped model as the starting point of
training on your own ECGs: `--set init_checkpoint=OUT/fold0.safetensors`).

    python scripts/checkpoint_from_bundle.py [--bundle edgeecg/assets/default] [--fold 0] --out runs/from_bundle

The member's ONNX (int8-stored weights are folded back first) names its weights by the timm parameters they
came from, except where the export folded a BatchNorm into the convolution before it: there the convolution
takes the folded weight and bias, and the BatchNorm becomes the identity. The rebuilt torch model is checked
against the ONNX graph in ONNX Runtime on random inputs before anything is written. Needs the train extra.
The architecture (timm name and keyword arguments) comes from --arch-json, a stage's sidecar or config, or the
recipe's default (train/configs/default.yaml).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LABELS  # noqa: E402
from edgeecg.bundle import default_bundle_dir, load_manifest, verify  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _module_of(conv_output: str) -> str:
    """'/stages/stages.0/blocks/blocks.0/conv_dw/Conv_output_0' -> 'stages.0.blocks.0.conv_dw'."""
    out: list[str] = []
    for part in [p for p in conv_output.split("/") if p][:-1]:  # the last is the op's own output
        if "." in part and out and part.startswith(out[-1] + "."):
            out[-1] = part  # a container's child: "stages" then "stages.0"
        else:
            out.append(part)
    return ".".join(out)


def state_from_onnx(model_onnx, torch_model) -> dict:
    """The torch state dict that reproduces `model_onnx` (dequantized) on `torch_model`'s architecture."""
    import torch
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model_onnx.graph.initializer}
    state = {k: v.clone() for k, v in torch_model.state_dict().items()}
    modules = dict(torch_model.named_modules())
    used = set()
    for name, arr in inits.items():
        if name in state:
            state[name] = torch.from_numpy(np.array(arr)).reshape(state[name].shape)
            used.add(name)
    for node in model_onnx.graph.node:
        # ConvNeXt's layer scale: the exporter folds gamma's reshape into an unnamed constant of the block's Mul
        if node.op_type == "Mul" and node.input[1] in inits and node.input[1] not in used:
            key = f"{_module_of(node.output[0])}.gamma"
            if key in state:
                state[key] = torch.from_numpy(np.array(inits[node.input[1]])).reshape(state[key].shape)
                used.add(key)
            continue
        if node.op_type not in ("Conv", "Gemm") or node.input[1] in used:
            continue
        module = _module_of(node.output[0])
        if f"{module}.weight" not in state:
            raise SystemExit(f"cannot place {node.op_type} {node.output[0]} (module {module!r}) in the model")
        state[f"{module}.weight"] = torch.from_numpy(np.array(inits[node.input[1]]))
        if len(node.input) > 2:
            state[f"{module}.bias"] = torch.from_numpy(np.array(inits[node.input[2]]))
        # The BatchNorm the exporter folded into this convolution: the next BatchNorm module after it in the
        # model's own order whose weights the graph does not name. It becomes the identity.
        names = list(modules)
        for later in names[names.index(module) + 1 :]:
            m = modules[later]
            if isinstance(m, torch.nn.BatchNorm2d):
                if f"{later}.weight" in used:
                    break
                state[f"{later}.weight"] = torch.ones_like(state[f"{later}.weight"])
                state[f"{later}.bias"] = torch.zeros_like(state[f"{later}.bias"])
                state[f"{later}.running_mean"] = torch.zeros_like(state[f"{later}.running_mean"])
                state[f"{later}.running_var"] = torch.full_like(state[f"{later}.running_var"], 1.0 - m.eps)
                used.update(f"{later}.{k}" for k in ("weight", "bias"))
                break
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                break
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=str(default_bundle_dir()))
    p.add_argument("--fold", type=int, default=0, help="which member (default 0)")
    p.add_argument(
        "--arch-json", help="a sidecar or JSON with model and model_kwargs (default: the recipe's)"
    )
    p.add_argument("--out", required=True, help="folder for foldK.safetensors + foldK.json")
    args = p.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch
    import yaml

    from edgeecg.export.int8w import dequantize_weights
    from edgeecg.train.checkpoint import save_weights
    from edgeecg.train.model import create_model

    bundle = Path(args.bundle)
    manifest = load_manifest(bundle)
    verify(bundle, manifest)
    clf = manifest["classifier"]
    variant = next(v for k, v in clf["variants"].items() if k in ("fp32", "int8w"))
    entry = next(m for m in variant["members"] if m["fold"] == args.fold)
    member = dequantize_weights(onnx.load(str(bundle / entry["file"])))
    if args.arch_json:
        arch = json.loads(Path(args.arch_json).read_text())
    else:
        arch = yaml.safe_load((ROOT / "train/configs/default.yaml").read_text())
    name, kwargs = arch["model"], dict(arch.get("model_kwargs") or {})
    if name != clf["model"]["arch"]:
        raise SystemExit(f"the bundle's members are {clf['model']['arch']}, not {name}")
    model = create_model(name, **kwargs).eval()
    model.load_state_dict(state_from_onnx(member, model))
    # The check: the rebuilt model computes what the member's graph computes.
    h, w = clf["input"]["height"], clf["input"]["width"]
    x = np.random.default_rng(0).normal(size=(4, 3, h, w)).astype(np.float32)
    sess = ort.InferenceSession(member.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max())
    if diff > 1e-3:
        raise SystemExit(
            f"the rebuilt model differs from the member's graph by {diff:.2e} (logits): not written"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sidecar = {
        "model": name,
        "model_kwargs": kwargs,
        "input": {k: clf["input"][k] for k in ("height", "width", "mean", "std", "channel_order")},
        "preprocess": {"mode": "from-bundle"},
        "fold": args.fold,
        "output": "logits",
        "labels": list(LABELS),
        "from_bundle": {"file": entry["file"], "sha256": entry["sha256"], "max_abs_logit_diff": diff},
    }
    save_weights(out / f"fold{args.fold}.safetensors", model.state_dict(), sidecar)
    print(
        f"wrote {out / f'fold{args.fold}.safetensors'} (max abs logit diff vs the bundle's graph {diff:.1e})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
