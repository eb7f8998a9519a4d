"""The one reader of JSON sidecars: found beside the model, one-line errors of the caller's type."""

from __future__ import annotations

import pytest

from edgeecg.errors import BundleError, UsageError
from edgeecg.sidecar import read_json_object, read_sidecar, sidecar_path


def test_found_beside_the_model_in_either_naming(tmp_path):
    model = tmp_path / "fold0.safetensors"
    assert sidecar_path(model) is None
    (tmp_path / "fold0.safetensors.json").write_text('{"model": "b"}')
    assert read_sidecar(model) == {"model": "b"}
    (tmp_path / "fold0.json").write_text('{"model": "a"}')  # NAME.json wins over NAME.EXT.json
    assert read_sidecar(model) == {"model": "a"}


def test_missing(tmp_path):
    model = tmp_path / "verifier.onnx"
    assert read_sidecar(model, required=False) == {}
    with pytest.raises(BundleError, match=r"no verifier\.json beside it"):
        read_sidecar(model)
    with pytest.raises(UsageError, match="^--verifier needs it$"):
        read_sidecar(model, error=UsageError, missing="--verifier needs it")


@pytest.mark.parametrize(
    ("text", "match"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "is not a JSON object"), ("\udcff", "is not valid JSON")],
)
def test_malformed_is_one_line_of_the_callers_error(tmp_path, text, match):
    side = tmp_path / "corners.json"
    side.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(UsageError, match=match) as err:
        read_sidecar(tmp_path / "corners.onnx", error=UsageError)
    assert "\n" not in str(err.value)
    with pytest.raises(BundleError, match=match):
        read_json_object(side)
