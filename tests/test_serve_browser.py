"""The page in a real browser: headless Debian Chromium (driven by Selenium through the system
chromedriver, never a downloaded one) against `serve` on 127.0.0.1. Skips when Chromium,
chromedriver or Selenium is absent (.ci/run installs them with apt-get)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="serve is an optional extra: pip install -e '.[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="serve needs uvicorn ([serve] extra)")
pytest.importorskip("selenium", reason="the browser test needs selenium (dev extra)")
httpx = pytest.importorskip("httpx", reason="the browser test needs httpx (dev extra)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_serve import pair_files, trained_run  # noqa: E402

from scenefusion.serve import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium "
           "chromium-driver")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def server(run):
    """uvicorn in a thread, on a socket bound here to a free port of 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(run["best"]), log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1500", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # Selenium Manager must never try to download
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def api_answer(url: str, image: Path, audio: Path) -> dict:
    """What POST /predict answers for the same files (a plain multipart request)."""
    files = {"image": (image.name, image.read_bytes(), "image/png"),
             "audio": (audio.name, audio.read_bytes(), "audio/wav")}
    response = httpx.post(f"{url}/predict", files=files, timeout=30)
    response.raise_for_status()
    return response.json()


def test_page_uploads_a_pair_and_shows_class_chart_and_spectrogram(server, browser, run,
                                                                   tmp_path):
    image, audio = pair_files(run, "FOREST")
    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.ID, "model-info").text.startswith("model "))
    assert "SYNTHETIC" in browser.find_element(By.ID, "provenance").text

    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    browser.find_element(By.ID, "image-input").send_keys(str(notes))
    assert "wrong file type for image" in browser.find_element(By.ID, "message").text

    browser.find_element(By.ID, "image-input").send_keys(str(image))
    browser.find_element(By.ID, "audio-input").send_keys(str(audio))
    wait.until(lambda d: d.find_element(By.ID, "spectrogram-note").text.startswith(
        "spectrogram:"))
    assert not browser.find_element(By.ID, "message").is_displayed()
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: d.find_element(By.ID, "predicted-class").text)

    shown = browser.find_element(By.ID, "predicted-class").text
    expected = api_answer(server, image, audio)
    assert shown == expected["class"] and shown in {"BEACH", "CITY", "FOREST"}
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar")
    assert {b.get_attribute("data-series") for b in bars} == set(expected["per_modality"])
    assert len(bars) == len(expected["per_modality"]) * len(expected["top_k"])
    assert all(float(b.get_attribute("width")) >= 1 for b in bars)
    # the spectrogram canvas holds a drawn image (not all one colour)
    distinct = browser.execute_script(
        "const c = document.getElementById('spectrogram');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const s = new Set(); for (let i = 0; i < d.length; i += 4 * 97) s.add(d[i] * 65536 +"
        " d[i + 1] * 256 + d[i + 2]); return s.size;")
    assert distinct > 10
    # the image model's saliency map is drawn over the picture, as the API computed it
    assert browser.find_element(By.ID, "saliency-box").is_displayed()
    assert browser.find_element(By.ID, "saliency-note").text.startswith(shown + " (")
    drawn = browser.execute_script(
        "const c = document.getElementById('saliency');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const s = new Set(); for (let i = 0; i < d.length; i += 4 * 31) s.add(d[i] * 65536 +"
        " d[i + 1] * 256 + d[i + 2]); return s.size;")
    assert drawn > 10
    browser.execute_script("document.getElementById('saliency-box').scrollIntoView()")

    shot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(shot))
    if os.environ.get("SCENEFUSION_SCREENSHOT"):  # the README's picture: regenerate on demand
        target = Path(os.environ["SCENEFUSION_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_page_marks_the_decisive_seconds_of_a_long_sound_on_its_spectrogram(
        server, browser, run, tmp_path):
    import numpy as np
    import soundfile as sf

    _, clip = pair_files(run, "BEACH")
    samples, rate = sf.read(clip)
    long_sound = tmp_path / "long.wav"
    sf.write(long_sound, np.tile(samples, 6), rate)
    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.ID, "model-info").text.startswith("model "))
    browser.find_element(By.ID, "audio-input").send_keys(str(long_sound))
    wait.until(lambda d: d.find_element(By.ID, "spectrogram-note").text.startswith(
        "spectrogram:"))
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: d.find_element(By.ID, "decisive-note").is_displayed())
    note = browser.find_element(By.ID, "decisive-note").text
    assert note.startswith("green: the seconds most for the answer (") and "blue:" in note


def test_page_sends_a_video_with_its_smoothing_and_draws_the_timeline(server, browser,
                                                                      tmp_path):
    pytest.importorskip("av", reason="videos need PyAV: pip install -e '.[video]'")
    from videos import write_video

    video = write_video(tmp_path / "walk.mp4", seconds=3)
    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.ID, "model-info").text.startswith("model "))
    assert not browser.find_element(By.ID, "smooth-label").is_displayed()  # pairs: no smoothing
    browser.find_element(By.ID, "video-input").send_keys(str(video))
    assert browser.find_element(By.ID, "smooth-label").is_displayed()
    smooth = browser.find_element(By.ID, "smooth")
    smooth.clear()
    smooth.send_keys("5")
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline rect.second"))

    files = {"video": (video.name, video.read_bytes(), "video/mp4")}
    expected = httpx.post(f"{server}/predict", files=files, data={"smooth": "5"}, timeout=60)
    expected.raise_for_status()
    titles = [r.find_element(By.TAG_NAME, "title").get_attribute("textContent")
              for r in browser.find_elements(By.CSS_SELECTOR, "#timeline rect.second")]
    assert [t.split(" ")[2] for t in titles] == [s["class"] for s in expected.json()["timeline"]]
    assert browser.find_element(By.ID, "predicted-class").text == expected.json()["class"]
    # the decisive seconds the API named are marked on the timeline
    marked = {(m.get_attribute("class").split()[1],
               int(m.find_element(By.TAG_NAME, "title").get_attribute("textContent").split()[0]))
              for m in browser.find_elements(By.CSS_SELECTOR, "#timeline text.decisive")}
    decisive = expected.json()["decisive_seconds"]
    assert marked == {(side, second) for side, seconds in decisive.items()
                      for second, _ in seconds} and marked
