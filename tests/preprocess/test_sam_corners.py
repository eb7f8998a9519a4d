"""SAM plumbing: a tiny encoder/decoder ONNX pair with SAM's export signature and random weights.

The decoder's mask is the prompt box (in the original image frame, rebuilt from point_coords and
orig_im_size the way SAM's decoder uses them) plus a small random term from the embeddings, so the test
checks the coordinate transforms end to end: box -> encoder frame -> mask at orig_im_size -> quad.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from edgeecg.preprocess import PreprocessConfig, Preprocessor  # noqa: E402
from edgeecg.preprocess.sam import SamCorners  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy exporter, on purpose

S = 64  # encoder input side (1024 in SAM; small here)


class _Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 16, stride=16)

    def forward(self, images):
        return self.conv(images)


class _Decoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(8, 2)

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
        feat = self.head(image_embeddings.mean((2, 3)))  # [1, 8] -> [1, 2]
        h, w = orig_im_size[0], orig_im_size[1]
        scale = S / torch.maximum(h, w)
        box = point_coords[0] / scale  # [2, 2] in the original frame
        ys = torch.arange(h.to(torch.int64)).to(torch.float32)[:, None] + 0.5
        xs = torch.arange(w.to(torch.int64)).to(torch.float32)[None, :] + 0.5
        inside = torch.minimum(
            torch.minimum(xs - box[0, 0], box[1, 0] - xs), torch.minimum(ys - box[0, 1], box[1, 1] - ys)
        )
        noise = 0.01 * torch.tanh(feat[0, 0]) + 0 * (
            mask_input.sum() + has_mask_input.sum() + point_labels.sum()
        )
        masks = (inside + noise)[None, None]  # [H, W] -> [1, 1, H, W]
        return masks, torch.sigmoid(feat[:, 1:])


@pytest.fixture(scope="module")
def sam_pair(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("sam")
    enc, dec = d / "encoder.onnx", d / "decoder.onnx"
    torch.onnx.export(
        _Encoder().eval(), (torch.zeros(1, 3, S, S),), str(enc), input_names=["images"],
        output_names=["image_embeddings"], opset_version=17, dynamo=False,
    )  # fmt: skip
    args = (
        torch.zeros(1, 8, S // 16, S // 16),
        torch.zeros(1, 2, 2),
        torch.zeros(1, 2),
        torch.zeros(1, 1, S // 4, S // 4),
        torch.zeros(1),
        torch.tensor([48.0, 64.0]),
    )
    names = [
        "image_embeddings",
        "point_coords",
        "point_labels",
        "mask_input",
        "has_mask_input",
        "orig_im_size",
    ]
    torch.onnx.export(
        _Decoder().eval(), args, str(dec), input_names=names, output_names=["masks", "iou_predictions"],
        dynamic_axes={"point_coords": {1: "n"}, "point_labels": {1: "n"}, "masks": {2: "h", 3: "w"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    return enc, dec


@pytest.mark.parametrize("size", [(300, 200), (1600, 1200)])
def test_sam_quad_matches_the_prompt_box(sam_pair, size):
    enc, dec = sam_pair
    w, h = size
    box = np.array([0.2 * w, 0.25 * h, 0.7 * w, 0.9 * h], np.float32)
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    with OnnxRuntimeRunner(enc, threads=1) as e, OnnxRuntimeRunner(dec, threads=1) as d:
        sam = SamCorners(e, d)
        quad = sam.corners(img, box)
        mask = sam.mask(img, box)
    assert mask.shape == (h, w)
    want = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
    tol = 2.5 * max(1.0, max(size) / 1024)  # one mask pixel at the working size, both ways
    assert quad is not None and np.abs(quad - want).max() <= tol, f"{quad} vs {want}"


def test_preprocessor_warps_with_sam_corners(sam_pair):
    enc, dec = sam_pair
    img = np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    with OnnxRuntimeRunner(enc, threads=1) as e, OnnxRuntimeRunner(dec, threads=1) as d:
        pre = Preprocessor(PreprocessConfig(mode="warp", corners="sam"), None, (32, 48), sam=SamCorners(e, d))
        prep = pre(img)
    # without a detector the prompt is the whole image, so the SAM quad is the image frame
    assert prep.corner_source == "sam" and prep.image.shape == (32, 48, 3)
    assert np.abs(prep.corners - [[0, 0], [300, 0], [300, 200], [0, 200]]).max() <= 2.5
