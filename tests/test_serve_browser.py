"""The ds2 serve web page in a real browser: Debian's chromium driven by Playwright, its fake
microphone playing a known FSDD recording. Record, see the partial text, stop, see the final
text and word timings; upload a file; a refused microphone and a lost server are said so.

Skips only where chromium is not installed (`apt-get install chromium`; .ci/run installs it).
Set DS2_SCREENSHOTS=DIR to keep the screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepspeech2.audio import load_audio
from deepspeech2.data.manifest import read_manifest
from deepspeech2.transcribe import Transcriber
from serve_model import served_models, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_BROWSER = "Debian's chromium is not installed (apt-get install chromium; .ci/run and scripts/setup.sh install it)"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser_setup(tmp_path_factory, tiny_corpus):
    if not Path(CHROMIUM).is_file():
        pytest.skip(NO_BROWSER)
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in deepspeech2[serve]")
    models = served_models(tmp_path_factory, tiny_corpus)
    transcriber = Transcriber.from_checkpoint(models["checkpoint"], engine="fp32")
    # A recording the model gets right offline, also after the round trip through 48 kHz that
    # the browser's audio path makes, between silences (the fake microphone loops it).
    import soxr

    def robust(path: str, text: str) -> bool:
        speech = load_audio(path, 16000)
        round_trip = soxr.resample(soxr.resample(speech, 16000, 48000), 48000, 16000).astype(np.float32)
        return all(transcriber.transcribe_samples(x)["text"] == text for x in (speech, round_trip))

    utt = next(u for u in read_manifest(models["dev"]) if u.duration > 0.4 and robust(u.path, u.text))
    speech = load_audio(utt.path, 16000)
    wav = tmp_path_factory.mktemp("browser") / "microphone.wav"
    sf.write(wav, np.concatenate([np.zeros(8000), speech, np.zeros(24000)]).astype(np.float32), 16000,
             subtype="PCM_16")
    process, url = start_server(models["onnx"])
    with playwright_api.sync_playwright() as p:
        yield {"playwright": p, "url": url, "wav": wav, "utt": utt, "process": process}
    if process.poll() is None:
        process.terminate()
        process.wait(30)


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("DS2_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


@pytest.mark.allowed_skip(NO_BROWSER)
def test_record_shows_partial_then_final_text_and_upload_works(browser_setup, tmp_path):
    setup = browser_setup
    expected = setup["utt"].text
    browser = setup["playwright"].chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=[*ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={setup['wav']}"])
    page = browser.new_page()
    try:
        page.goto(setup["url"] + "/")
        page.wait_for_function("document.getElementById('status').textContent === 'Ready.'", timeout=60_000)
        assert "streaming" in page.text_content("#model")
        page.click("#record")
        page.wait_for_function("document.getElementById('record').textContent.includes('Stop')", timeout=10_000)
        # Partial text while the fake microphone plays the recording, before stop is pressed.
        page.wait_for_function("document.getElementById('partial').textContent.length > 0", timeout=60_000)
        page.wait_for_timeout(1500)
        page.click("#record")
        page.wait_for_function("document.getElementById('final').textContent.length > 0", timeout=60_000)
        final = page.text_content("#final")
        assert expected in final, final
        words = page.locator("#words li").all_text_contents()
        assert any(w.startswith(expected) for w in words) and all(w.endswith(" s") for w in words), words
        assert page.text_content("#status").startswith("Done:")

        # File upload (the file input the drop zone also feeds).
        page.set_input_files("#file", str(setup["utt"].path))
        page.wait_for_function(f"document.getElementById('file-result').textContent === '{expected}'",
                               timeout=30_000)
        screenshot = _screenshot(page, tmp_path, "serve-page.png")
        assert screenshot.stat().st_size > 10_000
    except Exception:
        _screenshot(page, tmp_path, "serve-page-failed.png")  # what the page showed
        print("status:", page.text_content("#status"), "| partial:", page.text_content("#partial"),
              "| final:", page.text_content("#final"))
        raise
    finally:
        browser.close()


@pytest.mark.allowed_skip(NO_BROWSER)
def test_refused_microphone_and_lost_server_are_said(browser_setup, tmp_path):
    setup = browser_setup
    browser = setup["playwright"].chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=[*ARGS, "--use-fake-device-for-media-stream"])
    try:
        context = browser.new_context()  # no microphone permission: getUserMedia is refused
        page = context.new_page()
        page.goto(setup["url"] + "/")
        page.wait_for_function("document.getElementById('status').textContent === 'Ready.'", timeout=30_000)
        page.click("#record")
        page.wait_for_function("document.getElementById('status').classList.contains('error')", timeout=10_000)
        assert "microphone was refused" in page.text_content("#status")

        setup["process"].terminate()  # the server goes away
        setup["process"].wait(30)
        page.set_input_files("#file", str(setup["utt"].path))
        page.wait_for_function("document.getElementById('status').textContent.includes('unreachable')",
                               timeout=10_000)
        _screenshot(page, tmp_path, "serve-page-unreachable.png")
    finally:
        browser.close()
