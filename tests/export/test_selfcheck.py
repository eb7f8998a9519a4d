"""edgeecg-selfcheck: the report a user attaches to a TensorRT bug, here and (trt-marked) on a GPU."""

from __future__ import annotations

import json

import pytest

from edgeecg.export.bundle_writer import engine_support
from edgeecg.export.selfcheck import format_table, main


def test_report_without_tensorrt_says_why_and_still_times_onnxruntime(capsys):
    if engine_support() is None:
        pytest.skip("TensorRT and a GPU are present here: the trt test below covers this machine")
    code = main(["--json", "--runs", "2"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2 and report["status"] == "cannot-build"
    assert "TensorRT plans cannot be built here" in report["reason"] and "\n" not in report["reason"]
    env = report["environment"]
    assert env["edgeecg"] and env["onnxruntime"].startswith(tuple("0123456789"))
    assert env["gpu_usable"] is False and env["gpu_problem"]
    ort = report["checks"]["onnxruntime"]
    assert ort["backend"] == "onnxruntime" and 0 < ort["p50_ms"] <= ort["p90_ms"]
    assert ort["rejected"] is False and set(ort["probabilities"]) == {"MI", "AF", "HYP", "CD", "STTC"}


def test_table_for_a_bug_report():
    report = {
        "environment": {"gpu": "Orin", "sm_count": 8, "tensorrt": "10.3.0.30", "board": None},
        "bundle": "b",
        "plans": [
            {
                "target": "fused",
                "precision": "fp16",
                "batch_sizes": [1, 8],
                "build_s": 41.2,
                "parity": {"max_abs_prob_diff": 0.0021},
            }
        ],  # fmt: skip
        "checks": {
            "onnxruntime": {"p50_ms": 80.1, "p90_ms": 90.0},
            "tensorrt+graphs": {"p50_ms": 9.5, "p90_ms": 10.0, "max_prob_change_vs_onnxruntime": 0.0031},
        },
        "status": "ok",
    }
    lines = format_table(report).splitlines()
    assert lines[0].split() == ["gpu", "Orin"] and lines[3].split() == ["board", "-"]
    assert any("plan fused" in x and "0.0021" in x and "41.2 s" in x for x in lines)
    assert any(x.startswith("pipeline tensorrt+graphs") and "3.1e-03" in x for x in lines)
    assert lines[-1].split() == ["status", "ok"]


def test_bad_image_is_one_line_and_exit_1(tmp_path, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    assert main(["--image", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and "Traceback" not in err


@pytest.mark.trt
@pytest.mark.gpu
def test_selfcheck_builds_checks_and_times_plans_on_this_gpu(capsys, tmp_path):
    code = main(["--json", "--runs", "5", "--keep", str(tmp_path / "kept")])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report.get("reason")
    env = report["environment"]
    assert env["sm_count"] > 0 and env["plan_key"] and env["cuda_driver"]
    assert {p["target"] for p in report["plans"]} >= {"detector"}
    for name in ("tensorrt", "tensorrt+graphs"):
        check = report["checks"][name]
        assert check["backend"] == "tensorrt" and check["max_prob_change_vs_onnxruntime"] < 2e-2
    assert (tmp_path / "kept" / "manifest.json").is_file()
