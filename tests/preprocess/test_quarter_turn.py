"""A sheet lying a quarter-turn round in the picture and running off the frame: the corner model places
its hidden corners, and the verifier says which way up the page reads (the bundled chain, synthetic
photos drawn as `edgeecg synth --style photo --seed 611 --size 1024x768` draws its items 85, 157 and 407)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeecg.preprocess import Preprocessor
from edgeecg.synth.dataset import item_rng
from edgeecg.synth.scenes import make_scene
from edgeecg.synth.waveforms import simulate


def _photo(index: int):
    rng = item_rng(611, index)
    rng.random()  # the negative draw synth makes first (none in a photo set without --negatives)
    scene = make_scene(simulate(rng), "photo", rng, size=(1024, 768))
    return scene.image, np.asarray(scene.geometry.paper_quad, np.float32)


def _order_off(corners: np.ndarray, quad: np.ndarray) -> int:
    """By how many places `corners` are rolled against the true quad's order (0: right way round)."""
    return int(np.argmin([np.linalg.norm(np.roll(corners, k, 0) - quad, axis=1).sum() for k in range(4)]))


@pytest.mark.parametrize("index", [85, 157, 407])
def test_a_sheet_a_quarter_turn_round_and_cut_by_the_frame_comes_out_upright(bundled_chain, index):
    chain = bundled_chain
    img, quad = _photo(index)
    h, w = img.shape[:2]
    v = quad[1] - quad[0]
    assert abs(abs(np.degrees(np.arctan2(v[1], v[0]))) - 90) < 20  # the sheet's top runs up or down
    assert ((quad[:, 0] < 0) | (quad[:, 0] > w) | (quad[:, 1] < 0) | (quad[:, 1] > h)).any()  # cut
    prep = chain(img)
    assert "+model" in prep.corner_source and "+landscape" in prep.corner_source
    assert _order_off(prep.corners, quad) == 0
    assert np.linalg.norm(prep.corners - quad, axis=1).mean() < 0.03 * np.hypot(w, h)
    # without the verifier the frame-cut outline cannot say which way the sheet lies: the frame's way stays
    unchecked = Preprocessor(chain.cfg, chain.detector, chain.out_size, corner_model=chain.corner_model)(img)
    assert _order_off(unchecked.corners, quad) != 0
