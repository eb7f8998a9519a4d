"""Synthetic data engine speed (issue 2 targets).

- one photo-style 2200x1700 scene, one core: median <= 150 ms (ecg-image-kit: ~700 ms clean, ~8 s distorted);
- training-size (1024x768) images, two worker processes, written to disk: >= 25 images/s.

Run: `OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_bench_synth.py --benchmark-only`
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edgeecg.synth.dataset import SynthConfig, item_rng, write_dataset
from edgeecg.synth.scenes import make_scene
from edgeecg.synth.waveforms import simulate


@pytest.fixture
def one_core():
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


@pytest.mark.benchmark(group="synth-scene")
@pytest.mark.parametrize("style", ["clean", "photo"])
def test_scene_2200x1700_one_core(benchmark, one_core, style):
    counter = iter(range(10**9))

    def one():
        rng = item_rng(11, next(counter))
        return make_scene(simulate(rng), style, rng, size=(2200, 1700))

    scene = benchmark(one)
    assert scene.image.shape == (1700, 2200, 3)


@pytest.mark.benchmark(group="synth-throughput")
def test_training_size_two_workers(benchmark, tmp_path):
    n = 100
    runs = iter(range(10**6))

    def make():
        out = tmp_path / f"run{next(runs)}"
        write_dataset(
            SynthConfig(out=str(out), n=n, seed=5, style="mix", size=(1024, 768), workers=2), progress=False
        )
        shutil.rmtree(out)

    benchmark.pedantic(make, rounds=3, iterations=1, warmup_rounds=1)
    rate = n / float(np.median(benchmark.stats.stats.data))
    benchmark.extra_info["images_per_second"] = round(rate, 1)
