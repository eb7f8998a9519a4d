"""ROC pictures drawn with OpenCV (the runtime has no matplotlib)."""

from __future__ import annotations

import cv2
import numpy as np

from edgeecg.plots import _CURVE, plot_roc


def test_one_png_per_class_with_both_outcomes_and_the_curve_where_it_belongs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 5))
    y[:, 1] = 0  # AF has no positive here: no curve to draw
    scores = rng.random((200, 5))
    scores[:, 0] = y[:, 0]  # MI perfectly separated: the curve runs up the left edge, then along the top
    paths = plot_roc(y, scores, tmp_path / "roc", prefix="roc", title="t")
    assert [p.name for p in paths] == ["roc_MI.png", "roc_HYP.png", "roc_CD.png", "roc_STTC.png"]
    img = cv2.imread(str(paths[0]))
    curve = np.all(np.abs(img.astype(int) - _CURVE) < 40, axis=2)
    ys, xs = np.nonzero(curve)
    assert xs.min() < 60 and ys.min() < 50  # reaches the top-left corner of the axes
    assert not curve[img.shape[0] // 2 :, img.shape[1] // 2 :].any()  # never near the bottom right
