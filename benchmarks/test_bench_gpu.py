"""GPU groups: torch-CUDA FP16 (autocast, eager) and TensorRT FP16 plans, per batch size; the detector plan at
its input size; end to end with the TensorRT backend. Skipped cleanly without a GPU (and TensorRT).

Every timed call synchronises before it returns (torch.cuda.synchronize; the TensorRT runner waits on its
stream and copies the outputs to the host), so the times are real latencies, not launch times. Each figure
carries the model's FLOPs (torch.utils.flop_counter on the member at batch 1, times members and batch) and
the device name, from which report.py prints the roofline floor next to it.

Plans are built once per GPU and TensorRT version into the cached FP16 bundle (`edgeecg-export --engines`
does the same through `add_engines`).
"""

from __future__ import annotations

import numpy as np
import pytest
from benchsuite import (
    BenchSettings,
    build_checkpoints,
    build_detector_checkpoint,
    build_models,
    default_bundle,
)
from roofline import count_flops

SETTINGS = BenchSettings.from_env()


def _batch(settings: BenchSettings, n: int) -> np.ndarray:
    return (
        np.random.default_rng(n).standard_normal((n, 3, settings.height, settings.width)).astype(np.float32)
    )


@pytest.fixture(scope="module")
def gpu_models(settings):
    """The FP16 bundle (mixed-precision ONNX next to FP32)."""
    return build_models(settings, fp16=True)


@pytest.fixture(scope="module")
def checkpoints(settings):
    """The members' checkpoints only: the torch groups need no ONNX bundle."""
    return build_checkpoints(settings)


@pytest.fixture(scope="module")
def detector_pt(settings):
    return build_detector_checkpoint(settings)


@pytest.fixture(scope="module")
def gpu_name():
    import torch  # noqa: PLC0415

    return torch.cuda.get_device_name(0)


@pytest.fixture(scope="module")
def member_flops(checkpoints, settings) -> int:
    """FLOPs of one member on one image."""
    import torch  # noqa: PLC0415

    from edgeecg.export.checkpoints import load_member, read_checkpoint  # noqa: PLC0415

    model = load_member(read_checkpoint(checkpoints[0]))
    return count_flops(model, torch.zeros(1, 3, settings.height, settings.width))


@pytest.fixture(scope="module")
def detector_flops(detector_pt, settings) -> int | None:
    try:
        import torch  # noqa: PLC0415
        from ultralytics import YOLO  # noqa: PLC0415

        model = YOLO(str(detector_pt)).model.float().eval()
        return count_flops(model, torch.zeros(1, 3, settings.det_size, settings.det_size))
    except Exception:  # noqa: BLE001  (a missing count only loses the roofline column)
        return None


# -- torch CUDA FP16 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_members(checkpoints):
    import torch  # noqa: PLC0415

    from edgeecg.export.checkpoints import load_member, read_checkpoint  # noqa: PLC0415

    models = [load_member(read_checkpoint(c)).cuda().eval() for c in checkpoints]
    yield models
    del models
    torch.cuda.empty_cache()


@pytest.mark.gpu
@pytest.mark.parametrize("batch", SETTINGS.batch_sizes)
def test_torch_cuda_fp16_ensemble(bench, benchmark, torch_members, settings, member_flops, gpu_name, batch):
    """Eager torch, autocast FP16 (LayerNorm stays FP32 under autocast), members one after the other."""
    import torch  # noqa: PLC0415

    benchmark.group = f"GPU ensemble of {settings.folds} (batch {batch})"
    x = torch.from_numpy(_batch(settings, batch)).cuda()

    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            probs = torch.stack([torch.sigmoid(m(x).float()) for m in torch_members], dim=1)  # [N, M, 5]
            out = probs.mean(dim=1).cpu()
        torch.cuda.synchronize()
        return out

    out = bench(
        run,
        case=f"gpu/torch-cuda-fp16/b{batch}",
        batch=batch,
        warmup=max(settings.warmup, 10),
        backend="torch-cuda",
        precision="fp16",
        gpu=gpu_name,
        flops=member_flops * len(torch_members) * batch,
    )
    assert tuple(out.shape) == (batch, 5)


@pytest.mark.gpu
@pytest.mark.benchmark(group="GPU detector (input size, batch 1)")
def test_torch_cuda_fp16_detector(bench, detector_pt, settings, detector_flops, gpu_name):
    """The yolov8n-pose detector in eager torch, FP16 weights, at its input size (raw head output)."""
    import torch  # noqa: PLC0415
    from ultralytics import YOLO  # noqa: PLC0415

    model = YOLO(str(detector_pt)).model.cuda().half().eval()
    n = settings.det_size
    x = torch.rand(1, 3, n, n, device="cuda", dtype=torch.float16)

    def run():
        with torch.inference_mode():
            out = model(x)
        torch.cuda.synchronize()
        return out

    out = bench(
        run,
        case="gpu/torch-cuda-fp16-detector/b1",
        warmup=max(settings.warmup, 10),
        backend="torch-cuda",
        precision="fp16",
        gpu=gpu_name,
        flops=detector_flops,
        input=[n, n],
    )
    assert (out[0] if isinstance(out, (list, tuple)) else out).shape[0] == 1


# -- TensorRT -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trt_bundle(gpu_models, settings):
    """The FP16 bundle with plans for this GPU (built on first use)."""
    from edgeecg.backends.tensorrt import tensorrt_usable  # noqa: PLC0415
    from edgeecg.export.bundle_writer import ExportConfig, add_engines  # noqa: PLC0415

    if not tensorrt_usable(gpu_models.manifest, ["fused"], "fp16"):
        cfg = ExportConfig(
            checkpoints=(),
            out=str(gpu_models.bundle),
            batch_sizes=tuple(settings.batch_sizes),
            parity_samples=8,
            timing_cache=str(gpu_models.root / "timing-cache"),
            command="benchmarks/test_bench_gpu.py (plans for the benchmark bundle)",
        )
        add_engines(gpu_models.bundle, cfg, print)
    return gpu_models.bundle


def _plan(bundle, target: str, precision: str):
    from edgeecg.backends.tensorrt import select_plan  # noqa: PLC0415
    from edgeecg.bundle import load_manifest  # noqa: PLC0415

    manifest = load_manifest(bundle)
    return bundle / select_plan(manifest, target, precision, bundle_dir=bundle)["file"]


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.parametrize("graph", [False, True], ids=["stream", "cuda-graph"])
@pytest.mark.parametrize("batch", SETTINGS.batch_sizes)
def test_tensorrt_fused(bench, benchmark, trt_bundle, settings, member_flops, gpu_name, batch, graph):
    """The fused FP16 plan through the runtime's TensorRT runner (host copies included)."""
    from edgeecg.backends.tensorrt import TensorRTRunner  # noqa: PLC0415

    if graph and batch != 1:
        pytest.skip("the runner replays CUDA graphs for batch 1 only")
    benchmark.group = f"GPU ensemble of {settings.folds} (batch {batch})"
    x = _batch(settings, batch)
    with TensorRTRunner(_plan(trt_bundle, "fused", "fp16"), cuda_graph=graph) as runner:
        out = bench(
            lambda: runner.infer(x),
            case=f"gpu/tensorrt-fp16{'-graph' if graph else ''}/b{batch}",
            batch=batch,
            warmup=max(settings.warmup, 10),
            backend="tensorrt",
            precision="fp16",
            gpu=gpu_name,
            flops=member_flops * settings.folds * batch,
        )
    assert out["prob"].shape == (batch, 5)


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.benchmark(group="GPU detector (input size, batch 1)")
def test_tensorrt_detector(bench, trt_bundle, settings, detector_flops, gpu_name):
    from edgeecg.backends.tensorrt import TensorRTRunner  # noqa: PLC0415

    n = settings.det_size
    x = np.random.default_rng(0).random((1, 3, n, n), dtype=np.float32)
    with TensorRTRunner(_plan(trt_bundle, "detector", "fp32")) as runner:
        out = bench(
            lambda: runner.infer(x),
            case="gpu/tensorrt-detector/b1",
            warmup=max(settings.warmup, 10),
            backend="tensorrt",
            precision="fp32",
            gpu=gpu_name,
            flops=detector_flops,
            input=[n, n],
        )
    assert next(iter(out.values())).shape[0] == 1


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.benchmark(group="GPU end to end (photo, TensorRT, batch 1)")
@pytest.mark.parametrize("source", ["file", "array"])
@pytest.mark.parametrize("which", ["bench", "default"])
def test_tensorrt_end_to_end(bench, trt_bundle, settings, photo, photo_image, gpu_name, which, source):
    """The whole pipeline with the TensorRT backend (pre-processing on the CPU, as on a Jetson).

    "default" is the package's bundle or EDGEECG_BENCH_BUNDLE, with plans built for this GPU by
    `edgeecg-export --engines --bundle DIR`.
    """
    from edgeecg.errors import BackendError  # noqa: PLC0415
    from edgeecg.pipeline import Pipeline  # noqa: PLC0415

    bundle = trt_bundle if which == "bench" else default_bundle()
    if bundle is None:
        pytest.skip(
            "no default bundle: edgeecg/assets/default/manifest.json is absent and EDGEECG_BENCH_BUNDLE unset"
        )
    try:
        pipe = Pipeline.from_bundle(bundle, backend="tensorrt", threads=settings.threads, batch_size=1)
    except BackendError as err:
        if which == "bench":  # its plans were built here a moment ago: not loading them is a bug
            raise
        # the shipped bundle carries no plans; the message names the command that builds them for this GPU
        pytest.skip(str(err))
    with pipe:

        def fn():
            return list(pipe.run_paths([photo.path])) if source == "file" else pipe.run([photo_image])

        results = bench(
            fn,
            case=f"gpu/e2e-tensorrt/{source}" + ("" if which == "bench" else "/default"),
            warmup=max(settings.warmup, 5),
            backend="tensorrt",
            bundle=which,
            gpu=gpu_name,
        )
    assert results[0].ok, results[0].to_dict()
