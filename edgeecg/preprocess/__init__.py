"""Pre-processing: find the paper (YOLO ONNX, decoded in numpy), its corners, crop or warp, CLAHE.

Only numpy, OpenCV and the Runner protocol: no ultralytics or torch at run time.
"""

from edgeecg.preprocess.chain import (
    Prepared,
    PreprocessConfig,
    Preprocessor,
    debug_montage,
    save_debug_montage,
    to_model_input,
)
from edgeecg.preprocess.clahe import apply_clahe
from edgeecg.preprocess.cornermodel import CornerModel
from edgeecg.preprocess.corners import classical_corners, order_corners, quad_from_mask
from edgeecg.preprocess.detector import Detection, Detector, decode, letterbox, nms
from edgeecg.preprocess.geometry import crop_resize, paper_format, warp_matrix, warp_to_size
from edgeecg.preprocess.sam import SamCorners
from edgeecg.preprocess.verifier import Verifier

__all__ = [
    "CornerModel",
    "Detection",
    "Detector",
    "PreprocessConfig",
    "Prepared",
    "Preprocessor",
    "SamCorners",
    "Verifier",
    "apply_clahe",
    "classical_corners",
    "crop_resize",
    "decode",
    "letterbox",
    "nms",
    "order_corners",
    "paper_format",
    "quad_from_mask",
    "debug_montage",
    "save_debug_montage",
    "to_model_input",
    "warp_matrix",
    "warp_to_size",
]
