"""`edgeecg-export` command line: exit codes, one-line errors, --engines without TensorRT still writes ONNX."""

from __future__ import annotations

import json

from edgeecg.bundle import load_manifest, verify
from edgeecg.export.bundle_writer import engine_support
from edgeecg.export.cli import main


def test_usage_errors_exit_2_on_one_line(capsys, tmp_path):
    assert main(["--out", str(tmp_path / "b"), "--detector", "x.pt"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoints is required" in err and err.count("\n") == 1
    assert (
        main(
            [
                "--checkpoints",
                str(tmp_path / "none.safetensors"),
                "--out",
                str(tmp_path / "b"),
                "--detector",
                "x.pt",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["--bundle", str(tmp_path)]) == 2
    assert main(["--batch-sizes", "1,x"]) == 2


def test_broken_checkpoint_exits_1(capsys, tmp_path, make_checkpoint, detector_pt):
    make_checkpoint(tmp_path / "ck", 0)
    (tmp_path / "ck" / "fold0.json").write_text("{not json")
    code = main(
        ["--checkpoints", str(tmp_path / "ck"), "--out", str(tmp_path / "b"), "--detector", str(detector_pt)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_engines_flag_writes_onnx_and_plans_where_it_can(capsys, tmp_path, ckpt_dir, bundle):
    """Without TensorRT the ONNX bundle is complete and says how to build plans; with it, the plans are in."""
    out, manifest = bundle
    can_build = engine_support() is None
    thr = tmp_path / "thr.json"
    thr.write_text(json.dumps({"thresholds": [0.2, 0.3, 0.4, 0.5, 0.6], "method": "youden_j"}))
    target = tmp_path / "b"
    code = main(
        [
            "--checkpoints",
            str(ckpt_dir / "fold0.safetensors"),
            "--detector",
            str(out / "detector.onnx"),
            "--out",
            str(target),
            "--precision",
            "fp32",
            "--engines",
            "--thresholds",
            str(thr),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert ("TensorRT plans skipped" in text and "--engines --bundle" in text) is not can_build
    assert "fp32/fold0.onnx" in text and "done in" in text
    written = load_manifest(target)
    verify(target, written)
    assert written["classifier"]["thresholds"] == [0.2, 0.3, 0.4, 0.5, 0.6]
    assert written["classifier"]["threshold_method"] == "youden_j"
    assert list(written["classifier"]["variants"]) == ["fp32"]
    plans = {e["target"] for e in written["engines"]}
    assert plans == ({"member:0", "detector"} if can_build else set())
    assert "--engines" in written["provenance"]["command"]
