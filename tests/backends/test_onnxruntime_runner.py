"""OnnxRuntimeRunner: shapes, dtypes, errors, and the session settings it applies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import BackendError

MEMBER = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny" / "fold0.onnx"


def test_runs_and_validates():
    with OnnxRuntimeRunner(MEMBER, threads=1) as r:
        (spec,) = r.inputs
        assert spec.shape[0] is None and spec.dtype == np.float32
        x = np.zeros((2, *spec.shape[1:]), np.float32)
        out = r.infer(x)
        assert next(iter(out.values())).shape == (2, 5)
        assert r.last_inference_time is not None
        with pytest.raises(BackendError, match="must be float32"):
            r.infer(x.astype(np.float64))
        with pytest.raises(BackendError, match="must have shape"):
            r.infer(np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.parametrize("spinning", [False, True])
def test_spinning_setting_reaches_the_session(spinning):
    with OnnxRuntimeRunner(MEMBER, threads=1, spinning=spinning) as r:
        opts = r.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spinning else "0")
        if spinning:  # ...between the operators of a run, never after it
            assert opts.get_session_config_entry("session.force_spinning_stop") == "1"


def test_sessions_spin_only_within_a_run_by_default():
    with OnnxRuntimeRunner(MEMBER, threads=1) as r:
        opts = r.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        assert opts.get_session_config_entry("session.force_spinning_stop") == "1"


def test_unloadable_model_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="ONNX Runtime cannot load") as err:
        OnnxRuntimeRunner(bad).activate()
    assert "\n" not in str(err.value)
