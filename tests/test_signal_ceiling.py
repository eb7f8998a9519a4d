"""scripts/signal_ceiling.py --page: what a 3x4 page of a given input size keeps of a 12-lead record."""

from __future__ import annotations

import numpy as np


def test_as_page_keeps_each_lead_in_its_column_and_the_rhythm_strip(load_script):
    sc = load_script("signal_ceiling")
    t = int(10 * sc.FS)
    x = np.zeros((1, 12, t), np.float32)
    x[0, 0] = 1.0  # lead I: only its first 2.5 s column survives
    x[0, 1] = 2.0  # lead II: its column and the whole strip
    x[0, 11, : t // 4] = 5.0  # V6 outside its column (the last one): gone
    page = sc.as_page(x, px_per_s=sc.FS, px_per_mv=0)  # one sample per pixel column, no rounding
    lo, hi = page[0, :13], page[0, 13:]
    assert page.shape == (1, 26, t)
    q = t // 4
    np.testing.assert_array_equal(lo[0, :q], 1.0)
    np.testing.assert_array_equal(lo[0, q:], 0.0)
    np.testing.assert_array_equal(lo[1, :q], 2.0)
    np.testing.assert_array_equal(lo[1, q:], 0.0)
    np.testing.assert_array_equal(lo[12], 2.0)  # the lead II strip, all 10 s
    assert not hi[11].any()
    np.testing.assert_array_equal(lo, hi)


def test_as_page_takes_each_pixel_columns_extremes_in_whole_pixels(load_script):
    sc = load_script("signal_ceiling")
    t = int(10 * sc.FS)
    x = np.zeros((2, 12, t), np.float32)
    x[:, 1] = np.sin(np.arange(t) / 3.0)[None]  # lead II
    page = sc.as_page(x, px_per_s=25.0, px_per_mv=6.0)  # 5 samples per pixel column
    assert page.shape == (2, 26, 250)
    strip_lo, strip_hi = page[0, 12], page[0, 25]
    want_lo = x[0, 1].reshape(250, 5).min(1)
    want_hi = x[0, 1].reshape(250, 5).max(1)
    np.testing.assert_allclose(strip_lo, np.round(want_lo * 6) / 6, atol=1e-6)
    np.testing.assert_allclose(strip_hi, np.round(want_hi * 6) / 6, atol=1e-6)
    assert np.allclose(page * 6, np.round(page * 6), atol=1e-4)  # whole pixels
