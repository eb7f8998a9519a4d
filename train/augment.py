"""Training augmentation: Albumentations geometry/photometry plus shadows bounded by Catmull-Rom splines.

Randomness: each call is seeded from the sample's own seed (`seed_transform`), so an image's
augmentation depends only on (run seed, epoch, position in the epoch), not on worker count or on what
ran before; that is what lets a resumed run repeat an uninterrupted one exactly.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeecg._lazy import require
from edgeecg.synth.artefacts import catmull_rom
from edgeecg.train.config import AugmentConfig

A = require("albumentations")

__all__ = ["SplineShadow", "build_augment", "seed_transform"]


class SplineShadow(A.ImageOnlyTransform):
    """Darken a smooth blob bounded by a closed Catmull-Rom spline (a hand or phone shadow).

    Args:
        strength: (min, max) darkening, 0 = none, 1 = black.
        n_points: (min, max) control points of the outline.
        blur: edge softness as a fraction of the image's shorter side.
        p: probability of applying.
    """

    def __init__(
        self,
        strength: tuple[float, float] = (0.15, 0.5),
        n_points: tuple[int, int] = (4, 7),
        blur: float = 0.05,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.strength = tuple(float(v) for v in strength)
        self.n_points = tuple(int(v) for v in n_points)
        self.blur = float(blur)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        rng = self.random_generator
        k = int(rng.integers(self.n_points[0], self.n_points[1] + 1))
        # Control points around a random centre, at random radii: a lumpy closed outline.
        centre = rng.uniform([0.0, 0.0], [w, h])
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.2, 0.7, k) * min(h, w) * rng.uniform(0.7, 1.8)
        pts = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]  # [k, 2]
        return {
            "outline": catmull_rom(pts, 16 * k, closed=True),
            "strength": float(rng.uniform(*self.strength)),
        }

    def apply(self, img: np.ndarray, outline: np.ndarray, strength: float, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        mask = np.zeros((h, w), np.float32)
        cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1.0)
        k = max(3, int(self.blur * min(h, w)) | 1)  # odd kernel size
        mask = cv2.GaussianBlur(mask, (k, k), 0)
        gain = 1.0 - strength * mask
        out = img.astype(np.float32) * (gain[..., None] if img.ndim == 3 else gain)
        return np.clip(out, 0, 255).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength", "n_points", "blur")


def build_augment(cfg: AugmentConfig) -> Any | None:
    """The training augmentation pipeline (an Albumentations Compose), or None when disabled."""
    if not cfg.enabled:
        return None
    white = (255, 255, 255)  # paper is white: fill exposed borders with it, not black
    bc = cfg.brightness_contrast
    return A.Compose(
        [
            A.Rotate(limit=cfg.rotate_limit, border_mode=cv2.BORDER_CONSTANT, fill=white, p=cfg.rotate_p),
            A.ElasticTransform(
                alpha=cfg.elastic_alpha,
                sigma=cfg.elastic_sigma,
                border_mode=cv2.BORDER_CONSTANT,
                fill=white,
                p=cfg.elastic_p,
            ),
            A.Perspective(
                scale=(0.0, cfg.perspective_scale),
                border_mode=cv2.BORDER_CONSTANT,
                fill=white,
                p=cfg.perspective_p,
            ),
            A.RandomBrightnessContrast(brightness_limit=bc, contrast_limit=bc, p=cfg.brightness_contrast_p),
            SplineShadow(strength=cfg.shadow_strength, p=cfg.shadow_p),
        ]
    )


def seed_transform(compose: Any, seed: int) -> None:
    """Seed a Compose and each of its transforms with distinct streams derived from `seed`."""
    compose.set_random_seed(int(seed) % (2**32))
    ss = np.random.SeedSequence(int(seed) % (2**63))
    for t, child in zip(compose.transforms, ss.spawn(len(compose.transforms)), strict=True):
        t.set_random_seed(int(child.generate_state(1)[0]))
