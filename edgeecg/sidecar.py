"""JSON sidecars: the `.json` a trainer or exporter writes beside a model file (`fold0.safetensors` ->
`fold0.json`, `verifier.onnx` -> `verifier.json`). Every reader in the package goes through here, so a
missing, unreadable or malformed sidecar gives the same one-line error wherever it is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeecg.errors import BundleError


def sidecar_path(model: str | Path) -> Path | None:
    """The sidecar of `model` when one exists: `NAME.json` beside it, else `NAME.EXT.json`."""
    model = Path(model)
    for cand in (model.with_suffix(".json"), model.with_name(model.name + ".json")):
        if cand.is_file():
            return cand
    return None


def read_json(path: str | Path, error: type[Exception] = BundleError) -> Any:
    """The JSON value in `path`; `error` with one line where it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise error(f"{path} cannot be read ({err.strerror or err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path} is not valid JSON ({err})") from None


def read_json_object(path: str | Path, error: type[Exception] = BundleError) -> dict[str, Any]:
    """The JSON object in `path`; `error` with one line where it cannot be read or is no object."""
    meta = read_json(path, error)
    if not isinstance(meta, dict):
        raise error(f"{path} is not a JSON object")
    return meta


def read_sidecar(
    model: str | Path,
    *,
    required: bool = True,
    error: type[Exception] = BundleError,
    missing: str | None = None,
) -> dict[str, Any]:
    """The sidecar of `model` as a dict; {} where there is none and it is not `required`, else `error`
    (with `missing` as its message when given)."""
    side = sidecar_path(model)
    if side is None:
        if not required:
            return {}
        raise error(missing or f"{model}: no {Path(model).with_suffix('.json').name} beside it")
    return read_json_object(side, error)
