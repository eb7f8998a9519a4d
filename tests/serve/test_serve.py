"""`edgeecg serve`: every endpoint, every bad upload, the token, overload, metrics, the page, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402

from edgeecg.serve.app import ServeConfig, Service, create_app  # noqa: E402
from edgeecg.serve.batcher import MicroBatcher, Overloaded  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "photo_mi.jpg"


@pytest.fixture(scope="module")
def service():
    svc = Service(ServeConfig(threads=1, max_bytes=4 << 20, max_pixels=4_000_000))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service.cfg, service)) as c:
        yield c


def test_classify_gives_what_infer_json_gives(client):
    data = PHOTO.read_bytes()
    got = client.post("/v1/classify", files={"file": ("photo_mi.jpg", data, "image/jpeg")})
    assert got.status_code == 200, got.text
    res = got.json()
    cli = subprocess.run(
        [sys.executable, "-m", "edgeecg.cli", "infer", str(PHOTO), "--json", "--threads", "1"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    want = json.loads(cli.stdout.splitlines()[0])
    assert res["image"] == "photo_mi.jpg" and res["positive"] == want["positive"] == ["MI"]
    assert res["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    assert res["votes"] == want["votes"] and res["box"] == pytest.approx(want["box"], abs=1e-3)
    assert {"decode", "classify", "total"} <= set(res["timings_ms"]) and "montage" not in res
    raw = client.post("/v1/classify?name=x.jpg", content=data, headers={"content-type": "image/jpeg"})
    assert raw.status_code == 200 and raw.json()["image"] == "x.jpg"
    assert raw.json()["probabilities"] == pytest.approx(res["probabilities"], abs=1e-6)


def test_montage_on_request(client):
    res = client.post("/v1/classify?montage=1", files={"file": ("p.jpg", PHOTO.read_bytes(), "image/jpeg")})
    png = res.json()["montage"]
    assert png.startswith("data:image/png;base64,")
    import base64

    img = cv2.imdecode(np.frombuffer(base64.b64decode(png.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[0] == 240 and img.shape[1] > 3 * 240  # input, warp, clahe side by side


def test_no_ecg_is_a_result_not_an_error(client):
    blank = cv2.imencode(".png", np.full((480, 640, 3), 255, np.uint8))[1].tobytes()
    res = client.post("/v1/classify", content=blank, headers={"content-type": "image/png"})
    assert res.status_code == 200 and res.json()["rejected"] is True
    assert res.json()["probabilities"] is None and "no ECG found" in res.json()["reason"]


def _png(h: int, w: int) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize(
    ("body", "ctype", "status", "says"),
    [
        (b"hello, not an image", "image/jpeg", 400, "not an image"),
        (PHOTO.read_bytes()[:5000], "image/jpeg", 400, "truncated"),
        (b"", "image/png", 400, "empty"),
        (b"{}", "application/json", 415, "not an image"),
        (b"x" * (5 << 20), "image/png", 413, "byte limit"),
        (_png(2100, 2100), "image/png", 413, "MP limit"),  # 4.4 MP against the 4 MP limit: header only
    ],
)
def test_bad_uploads_get_a_4xx_and_one_line(client, body, ctype, status, says):
    res = client.post("/v1/classify", content=body, headers={"content-type": ctype})
    assert res.status_code == status, res.text
    err = res.json()["error"]
    assert says in err and "\n" not in err and "Traceback" not in res.text


def test_multipart_without_a_file(client):
    res = client.post("/v1/classify", files={"note": ("n.txt", b"no image here", "text/plain")})
    assert res.status_code == 400 and "file" in res.json()["error"]


def test_health_ready_model_metrics_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    model = client.get("/v1/model").json()
    assert (
        list(model["thresholds"]) == ["MI", "AF", "HYP", "CD", "STTC"] and model["backend"] == "onnxruntime"
    )
    client.post("/v1/classify", content=b"nope", headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    assert 'edgeecg_requests_total{code="200"}' in text and 'edgeecg_requests_total{code="400"}' in text
    assert 'edgeecg_stage_seconds_count{stage="classify"}' in text and "edgeecg_queue_depth 0.0" in text
    assert "edgeecg_batch_size_count" in text and 'edgeecg_rejections_total{by="verifier"}' in text
    page = client.get("/").text
    assert 'capture="environment"' in page and 'accept="image/*"' in page
    assert "http://" not in page and "https://" not in page, "the page must work offline: no CDN"
    assert client.get("/openapi.json").json()["paths"]["/v1/classify"]["post"]


def test_token(service):
    cfg = ServeConfig(token="s3cret")
    with TestClient(create_app(cfg, service)) as c:
        assert c.post("/v1/classify", content=b"x", headers={"content-type": "image/png"}).status_code == 401
        assert c.get("/metrics").status_code == 401 and c.get("/v1/model").status_code == 401
        bad = {"authorization": "Bearer nope", "content-type": "image/jpeg"}
        assert c.post("/v1/classify", content=PHOTO.read_bytes(), headers=bad).status_code == 401
        good = {"authorization": "Bearer s3cret", "content-type": "image/jpeg"}
        assert c.post("/v1/classify", content=PHOTO.read_bytes(), headers=good).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


def test_pages_arriving_together_share_one_ensemble_call(service):
    calls: list[int] = []

    def classify(items):
        calls.append(len(items))
        return service._classify(items)

    img = cv2.imread(str(PHOTO))
    prepared = service.pipeline.preprocess(img)
    batcher = MicroBatcher(classify, batch_size=4, max_wait_s=0.2, capacity=16)
    futures = [batcher.submit((prepared, f"p{i}")) for i in range(6)]
    results = [f.result(timeout=30) for f in futures]
    batcher.close()
    assert calls == [4, 2], "six pages within the window: one full batch, then the rest"
    assert [r.image for r in results] == [f"p{i}" for i in range(6)]
    assert all(r.probabilities == results[0].probabilities for r in results)


def test_a_full_queue_is_overload_not_growth():
    gate = threading.Event()
    batcher = MicroBatcher(lambda items: (gate.wait(10), items)[1], batch_size=1, max_wait_s=0, capacity=2)
    first = batcher.submit("a")  # taken by the worker, which then blocks on the gate
    time.sleep(0.1)
    waiting = [batcher.submit("b"), batcher.submit("c")]  # the queue holds two
    with pytest.raises(Overloaded):
        batcher.submit("d")
    gate.set()
    assert [f.result(timeout=10) for f in (first, *waiting)] == ["a", "b", "c"]
    batcher.close()
    with pytest.raises(Overloaded):
        batcher.submit("e")  # closed


def test_overload_answers_503_with_retry_after(service):
    cfg = ServeConfig(workers=1, queue=1)
    slow = Service.__new__(Service)  # the same loaded service, with one slot in all
    slow.__dict__.update(service.__dict__)
    slow.cfg = cfg
    slow._slots = threading.BoundedSemaphore(1)
    slow._slots.acquire()  # a request in flight holds the only slot
    with TestClient(create_app(cfg, slow)) as c:
        res = c.post("/v1/classify", content=PHOTO.read_bytes(), headers={"content-type": "image/jpeg"})
        assert res.status_code == 503 and res.headers["retry-after"] == "1" and "busy" in res.json()["error"]
        slow._slots.release()
        ok = c.post("/v1/classify", content=PHOTO.read_bytes(), headers={"content-type": "image/jpeg"})
        assert ok.status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_the_requests_in_flight(tmp_path):
    port = _free_port()
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeecg.cli", "serve", "--port", str(port), "--threads", "1", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the service never became ready")
        big = cv2.resize(cv2.imread(str(PHOTO)), (4000, 3000))  # ~0.2 s each through one worker
        body = cv2.imencode(".jpg", big)[1].tobytes()
        answers: list[tuple[int, float]] = []

        def post() -> None:
            req = urllib.request.Request(url + "/v1/classify", body, {"content-type": "image/jpeg"})
            with urllib.request.urlopen(req, timeout=60) as r:
                answers.append((r.status, time.monotonic()))

        threads = [threading.Thread(target=post) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        # uvicorn re-raises the signal once it has shut down gracefully: the exit status says SIGTERM
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(answers) == 4 and all(code == 200 for code, _ in answers), proc.stdout.read()
    assert any(at > signalled for _, at in answers), "some request was still in flight at SIGTERM"
