"""SAM / MobileSAM to two ONNX files: the image encoder and a prompt decoder (points → masks).

Needs the optional `sam` extra: `segment_anything` (vit_b/l/h) or `mobile_sam` (vit_t), both exposing
`sam_model_registry`. The decoder wrapper is ours: it embeds point prompts with arithmetic instead of the
in-place masked writes of the prompt encoder, so the graph exports cleanly with a dynamic point count.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from edgeecg._lazy import require
from edgeecg.bundle import file_entry
from edgeecg.errors import EdgeECGError, MissingExtraError, UsageError

log = logging.getLogger(__name__)

OPSET = 17


def load_sam(checkpoint: str | Path, model_type: str = "vit_t") -> Any:
    """Build a SAM model of `model_type` from its registry and load `checkpoint` (CPU, eval)."""
    registry = None
    for module in (("mobile_sam",) if model_type == "vit_t" else ()) + ("segment_anything", "mobile_sam"):
        try:
            registry = require(module).sam_model_registry
            break
        except (MissingExtraError, AttributeError):
            continue
    if registry is None:
        raise MissingExtraError(
            "segment_anything (or mobile_sam for vit_t) is not installed; install it with: pip install 'edgeecg[sam]'"
        )
    if model_type not in registry:
        raise UsageError(f"unknown SAM type {model_type!r} (choose from {', '.join(sorted(registry))})")
    try:
        return registry[model_type](checkpoint=str(checkpoint)).eval()
    except Exception as err:  # torch/pickle errors for a wrong or broken checkpoint
        raise EdgeECGError(
            f"cannot load SAM {model_type} from {checkpoint}: {str(err).splitlines()[0]}"
        ) from None


def decoder_module(sam: Any) -> Any:
    """Torch module: (image_embeddings [1,256,64,64], point_coords [1,P,2] in 1024-px input space,
    point_labels [1,P] of 1 fg / 0 bg / -1 pad) → (masks [1,3,256,256] low-res logits, iou [1,3])."""
    torch = require("torch")

    class SamPointDecoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.prompt = model.prompt_encoder
            self.decoder = model.mask_decoder
            self.img_size = float(model.image_encoder.img_size)

        def forward(self, image_embeddings: Any, point_coords: Any, point_labels: Any) -> tuple[Any, Any]:
            coords = (point_coords + 0.5) / self.img_size  # pixel centres → [0, 1]
            sparse = self.prompt.pe_layer._pe_encoding(coords)  # [1, P, 256]
            labels = point_labels.unsqueeze(-1)  # [1, P, 1]
            pad = (labels == -1).to(sparse.dtype)
            sparse = sparse * (1.0 - pad) + self.prompt.not_a_point_embed.weight * pad
            for i, emb in enumerate(self.prompt.point_embeddings[:2]):  # 0: background, 1: foreground
                sparse = sparse + emb.weight * (labels == i).to(sparse.dtype)
            dense = self.prompt.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(  # [1, 256, 64, 64]
                1, -1, image_embeddings.shape[2], image_embeddings.shape[3]
            )
            masks, iou = self.decoder(
                image_embeddings=image_embeddings,
                image_pe=self.prompt.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            return masks, iou

    return SamPointDecoder(sam).eval()


def export_sam(
    checkpoint: str | Path,
    out_dir: str | Path,
    model_type: str = "vit_t",
    bundle_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Export encoder and decoder; return the manifest's "sam" section (paths relative to `bundle_dir`)."""
    torch = require("torch")
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not checkpoint.is_file():
        raise UsageError(f"SAM checkpoint {checkpoint} does not exist")
    sam = load_sam(checkpoint, model_type)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = int(sam.image_encoder.img_size)
    image = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            sam.image_encoder,
            (image,),
            str(out_dir / "encoder.onnx"),
            input_names=["image"],
            output_names=["image_embeddings"],
            opset_version=OPSET,
            dynamo=False,
        )
        emb = sam.image_encoder(image)
        coords = torch.tensor([[[size / 2, size / 2], [0.0, 0.0]]])
        labels = torch.tensor([[1.0, -1.0]])
        torch.onnx.export(
            decoder_module(sam),
            (emb, coords, labels),
            str(out_dir / "decoder.onnx"),
            input_names=["image_embeddings", "point_coords", "point_labels"],
            output_names=["low_res_masks", "iou_predictions"],
            dynamic_axes={"point_coords": {1: "points"}, "point_labels": {1: "points"}},
            opset_version=OPSET,
            dynamo=False,
        )
    base = Path(bundle_dir) if bundle_dir else out_dir
    rel = out_dir.resolve().relative_to(base.resolve())
    return {
        "model_type": model_type,
        "input_size": size,
        "pixel_mean": [float(v) for v in sam.pixel_mean.flatten()],
        "pixel_std": [float(v) for v in sam.pixel_std.flatten()],
        "encoder": file_entry(base, str(rel / "encoder.onnx")),
        "decoder": file_entry(base, str(rel / "decoder.onnx")),
    }
