"""Scale-out on Ray, on a local cluster this test starts (`ray start --head`, 2 CPUs: two worker processes),
loopback only: `edgeecg infer --ray` gives the same JSON lines as `edgeecg infer`, and `edgeecg serve --ray`
the same answers as `edgeecg serve`. Marked slow: starting Ray costs ~15-30 s on these 2 cores."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    exe = Path(sys.executable).with_name("ray")
    port = _port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", OMP_WAIT_POLICY="PASSIVE")
    start = [str(exe), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
             "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, env=env, capture_output=True)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(exe), "stop", "--force"], env=env, capture_output=True)


def _infer(args: list[str], env: dict) -> tuple[int, dict[str, dict]]:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeecg.cli", "infer", *args, "--json", "--threads", "1", "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return proc.returncode, {Path(d["image"]).name: d for d in lines}


def test_infer_on_ray_data_writes_the_same_jsonl(cluster, tmp_path):
    address, env = cluster
    images = tmp_path / "in"
    shutil.copytree(EXAMPLES, images, ignore=shutil.ignore_patterns("*.md"))
    (images / "broken.jpg").write_bytes(b"not an image")
    code, local = _infer([str(images)], env)
    ray_code, on_ray = _infer([str(images), "--ray", "--ray-workers", "2", "--ray-address", address], env)
    assert code == ray_code == 1  # the broken file, and only it
    assert set(on_ray) == set(local) and len(on_ray) == 7
    assert "error" in on_ray["broken.jpg"] and "not an image" in on_ray["broken.jpg"]["error"]
    for name, d in local.items():
        if "error" not in d:
            assert on_ray[name]["positive"] == d["positive"], name
            assert on_ray[name]["probabilities"] == pytest.approx(d["probabilities"], abs=1e-5), name


def test_serve_on_ray_answers_as_serve_does(cluster):
    from edgeecg.serve.app import ServeConfig
    from edgeecg.serve.cluster import serve_on_ray

    address, _ = cluster
    port = _port()
    url = serve_on_ray(ServeConfig(threads=1), "127.0.0.1", port, replicas=2, address=address, block=False)
    try:
        photo = (EXAMPLES / "photo_mi.jpg").read_bytes()
        req = urllib.request.Request(url + "v1/classify", photo, {"content-type": "image/jpeg"})
        with urllib.request.urlopen(req, timeout=120) as r:
            res = json.loads(r.read())
        assert res["positive"] == ["MI"] and res["probabilities"]["MI"] > 0.5
        bad = urllib.request.Request(url + "v1/classify", b"nope", {"content-type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=60)
        assert err.value.code == 400 and "not an image" in json.loads(err.value.read())["error"]
        with urllib.request.urlopen(url + "readyz", timeout=30) as r:
            assert json.loads(r.read())["status"] == "ready"
    finally:
        ray.serve.shutdown()
        ray.shutdown()
