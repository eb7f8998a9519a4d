"""The service's page in a real headless browser (Chromium driven by Selenium): upload an example, read the
result in the page. Skips where Chromium, chromedriver or Selenium is not installed (`apt install chromium
chromium-driver`, `pip install selenium`). `python tests/serve/test_page_browser.py OUT.png` writes the
screenshot the README shows."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "photo_mi.jpg"


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("Chromium and chromedriver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,1300"):
        opts.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(options=opts, service=Service(driver))


def _serve() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeecg.cli", "serve", "--port", str(port), "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "readyz", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("the service never became ready")


def read_in_browser(screenshot: Path | None = None) -> dict:
    """Upload the example photo through the page; what the page then shows."""
    browser = _browser()  # first: skips before anything starts where there is no browser or Selenium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        proc, url = _serve()
    except BaseException:
        browser.quit()
        raise
    try:
        browser.get(url)
        browser.find_element(By.ID, "file").send_keys(str(PHOTO))
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.ID, "montage")))
        rows = browser.find_elements(By.CSS_SELECTOR, "#result tbody tr")
        shown = {
            "status": browser.find_element(By.ID, "status").text,
            "rows": [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows],
            "positive_rows": [
                r.find_elements(By.TAG_NAME, "td")[0].text for r in rows if r.get_attribute("class") == "pos"
            ],
            "montage_width": browser.execute_script("return document.getElementById('montage').naturalWidth"),
        }
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(screenshot))
        return shown
    finally:
        browser.quit()
        proc.terminate()
        proc.wait(30)


def test_upload_an_example_and_read_the_result_in_the_page(tmp_path):
    shown = read_in_browser(tmp_path / "page.png")
    assert shown["status"] == "Positive: myocardial infarction"
    assert [r[0].split()[0] for r in shown["rows"]] == ["MI", "AF", "HYP", "CD", "STTC"]
    assert shown["positive_rows"] == ["MI (myocardial infarction)"]
    mi = shown["rows"][0]
    assert float(mi[1]) >= float(mi[2]) and mi[3].endswith("of 5")  # probability over its threshold, votes
    assert shown["montage_width"] > 500 and (tmp_path / "page.png").stat().st_size > 10_000


if __name__ == "__main__":
    print(read_in_browser(Path(sys.argv[1])))
