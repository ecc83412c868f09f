"""ds2 serve: the HTTP, OpenAI-compatible and WebSocket endpoints with a model trained here on
FSDD digits, every bad input the server must survive, the API key, and a real uvicorn process
(127.0.0.1 by default, a long request does not block the others, graceful shutdown)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="ds2 serve needs the extra deepspeech2[serve] (scripts/setup.sh installs it)")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.testclient import WebSocketDenialResponse  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from deepspeech2.cli import main as ds2  # noqa: E402
from deepspeech2.data.manifest import read_manifest  # noqa: E402
from deepspeech2.serve.app import ServeOptions, create_app  # noqa: E402
from deepspeech2.serve.streaming import Recognizer  # noqa: E402
from deepspeech2.transcribe import Transcriber  # noqa: E402
from serve_model import served_models, start_server  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_corpus) -> dict[str, Path]:
    return served_models(tmp_path_factory, tiny_corpus)


@pytest.fixture(scope="module")
def dev(models) -> list:
    return read_manifest(models["dev"])


@pytest.fixture(scope="module")
def offline(models, dev) -> dict[str, str]:
    """What `ds2 transcribe --engine fp32` says for every dev file: the reference for the server."""
    transcriber = Transcriber.from_checkpoint(models["checkpoint"], engine="fp32")
    return {u.path: transcriber.transcribe(u.path)["text"] for u in dev}


@pytest.fixture(scope="module")
def client(models):
    recognizer = Recognizer.load(models["onnx"])
    options = ServeOptions(max_upload_bytes=400_000, max_audio_seconds=5.0, idle_timeout=1.0, max_streams=2)
    with TestClient(create_app(recognizer, options)) as c:
        yield c


def _wav(samples: np.ndarray, rate: int = 16000, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _pcm(path: str, rate: int = 16000) -> bytes:
    from deepspeech2.audio import load_audio

    return (np.clip(load_audio(path, rate), -1, 1) * 32767).astype("<i2").tobytes()


def _healthy(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


def test_models_says_the_mode(client, models):
    info = client.get("/v1/models").json()["data"][0]
    assert info["mode"] == "streaming" and info["engine"] == "onnxruntime-streaming" and info["sample_rate"] == 16000
    bidirectional = Recognizer.load(models["bidirectional"])
    assert bidirectional.describe()["mode"] == "redecode"


def test_transcribe_returns_the_digits(client, dev, offline):
    """Every dev file through POST /v1/transcribe (multipart and raw body): the text of the
    offline PyTorch model, which is right on most of them."""
    right = 0
    for i, utt in enumerate(dev):
        data = Path(utt.path).read_bytes()
        if i % 2:
            response = client.post("/v1/transcribe", files={"file": (Path(utt.path).name, data, "audio/wav")})
        else:
            response = client.post("/v1/transcribe", content=data, headers={"content-type": "audio/wav"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["text"] == offline[utt.path]
        assert set(body) >= {"text", "words", "duration", "engine", "decoder", "elapsed"}
        assert body["engine"] == "onnxruntime-streaming" and body["decoder"] == "greedy"
        assert all(0 <= w["start"] < w["end"] <= body["duration"] + 0.05 for w in body["words"])
        right += body["text"] == utt.text
    assert right >= 0.75 * len(dev), f"{right}/{len(dev)} digits right"


def test_flac_and_ogg_opus_and_other_rates(client, dev, offline):
    from deepspeech2.audio import load_audio

    utt = next(u for u in dev if offline[u.path] == u.text)
    samples = load_audio(utt.path, 16000)
    for fmt, subtype, rate in [("FLAC", None, 16000), ("OGG", "OPUS", 48000), ("OGG", "VORBIS", 22050),
                               ("WAV", "FLOAT", 44100)]:
        import soxr

        data = _wav(soxr.resample(samples, 16000, rate), rate, fmt, subtype)
        response = client.post("/v1/transcribe", files={"file": (f"a.{fmt.lower()}", data, "application/octet-stream")})
        assert response.status_code == 200, (fmt, subtype, response.text)
        assert response.json()["text"] == utt.text, (fmt, subtype)


def test_openai_endpoint_formats(client, dev, offline):
    utt = next(u for u in dev if offline[u.path] == u.text)
    files = {"file": ("digit.wav", Path(utt.path).read_bytes(), "audio/wav")}

    def ask(fmt: str):
        return client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1", "response_format": fmt})

    assert ask("json").json() == {"text": utt.text}
    assert ask("text").text == utt.text + "\n"
    srt = ask("srt")
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert srt.text.splitlines()[0] == "1" and " --> " in srt.text and utt.text in srt.text
    vtt = ask("vtt").text
    assert vtt.startswith("WEBVTT") and "00:00:00." in vtt and utt.text in vtt
    verbose = ask("verbose_json").json()
    assert verbose["text"] == utt.text and verbose["duration"] > 0 and verbose["segments"][0]["text"] == utt.text
    assert verbose["words"][0]["word"] == utt.text
    assert ask("yaml").status_code == 400
    no_file = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"x": ("a", b"1")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]


def test_bad_input_gets_its_status_and_the_server_keeps_serving(client, dev):
    # Over the upload limit, said by Content-Length: 413 before the body is read.
    big = client.post("/v1/transcribe", content=b"\0" * 500_000, headers={"content-type": "audio/wav"})
    assert big.status_code == 413 and "limit is 400000 bytes" in big.json()["error"]
    _healthy(client)

    # Over the limit without Content-Length (chunked): 413 once the bytes pass it.
    def chunks():
        for _ in range(100):
            yield b"\0" * 10_000

    chunked = client.post("/v1/transcribe", content=chunks(), headers={"content-type": "audio/wav"})
    assert chunked.status_code == 413
    _healthy(client)

    garbage = client.post("/v1/transcribe", files={"file": ("x.wav", os.urandom(5000), "audio/wav")})
    assert garbage.status_code == 400 and "x.wav: not decodable audio" in garbage.json()["error"]
    empty = client.post("/v1/transcribe", content=b"", headers={"content-type": "audio/wav"})
    assert empty.status_code == 400
    text = client.post("/v1/transcribe", content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and "not audio" in text.json()["error"]
    text_part = client.post("/v1/transcribe", files={"file": ("a.txt", b"hello", "text/plain")})
    assert text_part.status_code == 415
    _healthy(client)

    # Longer than max_audio_seconds (5 s): 413 with the reason, from the header alone.
    long = _wav(np.zeros(16000 * 6, np.float32))
    too_long = client.post("/v1/transcribe", content=long, headers={"content-type": "audio/wav"})
    assert too_long.status_code == 413 and "6.0 s of audio, the limit is 5 s" in too_long.json()["error"]
    _healthy(client)
    assert client.post("/v1/transcribe", content=Path(dev[0].path).read_bytes()).status_code == 200

    metrics = client.get("/metrics").text
    assert 'ds2_requests_total{endpoint="/v1/transcribe",status="413"} 3' in metrics
    assert 'ds2_errors_total{endpoint="/v1/transcribe"}' in metrics
    assert "ds2_request_latency_seconds_bucket{le=\"+Inf\"}" in metrics and "ds2_audio_seconds_total" in metrics


def _recognized_when_padded(models, dev, offline, pad) -> tuple:
    """A dev utterance that the model (offline, fp32) still gets right with ``pad`` applied to its
    samples, and those samples: the tiny model (on the stand-in corpus when ../shared is absent)
    is not right about every file, and these tests are about the server, not the model."""
    from deepspeech2.audio import load_audio

    transcriber = Transcriber.from_checkpoint(models["checkpoint"], engine="fp32")
    for utt in dev:
        if offline[utt.path] != utt.text:
            continue
        samples = pad(load_audio(utt.path, 16000))
        if transcriber.transcribe_samples(samples)["text"] == utt.text:
            return utt, samples
    raise AssertionError("the tiny model gets no padded dev file right")


def test_long_audio_is_refused_or_transcribed_when_allowed(models, dev, offline):
    utt, samples = _recognized_when_padded(
        models, dev, offline, lambda x: np.concatenate([x, np.zeros(16000 * 6, np.float32)]))  # > 6 s
    for allow_long in (False, True):
        app = create_app(Recognizer.load(models["checkpoint"]), ServeOptions(max_audio_seconds=5.0,
                                                                             allow_long=allow_long))
        with TestClient(app) as c:
            response = c.post("/v1/transcribe", content=_wav(samples))
        assert response.status_code == (200 if allow_long else 413)
    body = response.json()
    reference = Transcriber.from_checkpoint(models["checkpoint"], engine="fp32").transcribe_samples(samples)
    assert body["text"] == reference["text"] == utt.text and body["engine"] == "torch-streaming"
    assert body["words"] == reference["words"] and body["duration"] > 6


def _stream(ws, pcm: bytes, frame: int = 1600, words: bool = True) -> list[dict]:
    ws.send_text(json.dumps({"sample_rate": 16000, "words": words}))
    assert ws.receive_json()["ready"]
    messages = []
    for start in range(0, len(pcm), frame):
        ws.send_bytes(pcm[start: start + frame])
    ws.send_text(json.dumps({"eof": 1}))
    while True:
        message = ws.receive_json()
        messages.append(message)
        if message.get("final") or "error" in message:
            return messages


def test_websocket_stream_partials_then_the_offline_text(client, dev, offline, capsys, models):
    def padded(x: np.ndarray) -> np.ndarray:  # as the PCM below: 0.5 s of silence either side
        pcm16 = (np.clip(x, -1, 1) * 32767).astype("<i2")
        return np.concatenate([np.zeros(8000), pcm16, np.zeros(8000)]).astype(np.float32) / 32768

    utt, _ = _recognized_when_padded(models, [u for u in dev if u.duration > 0.4], offline, padded)
    silence = np.zeros(8000, "<i2").tobytes()
    pcm = silence + _pcm(utt.path) + silence
    with client.websocket_connect("/v1/stream") as ws:
        messages = _stream(ws, pcm, frame=640)  # 20 ms frames, as a microphone sends them
    partials = [m for m in messages if "partial" in m]
    final = messages[-1]
    assert partials and messages.index(partials[0]) < len(messages) - 1  # partials before the end
    assert final["final"] and final["text"] == utt.text and final["latency"] < 5
    assert [w["word"] for w in final["words"]] == [utt.text]
    assert 0 <= final["words"][0]["start"] < final["words"][0]["end"] <= final["duration"] + 0.05

    # The final text and word timings equal `ds2 transcribe`'s on the same audio.
    wav = Path(models["dev"]).parent / "padded.wav"
    sf.write(wav, np.frombuffer(pcm, "<i2"), 16000, subtype="PCM_16")
    capsys.readouterr()
    assert ds2(["transcribe", str(wav), "--checkpoint", str(models["checkpoint"]), "--engine", "fp32", "--json"]) == 0
    offline_result = json.loads(capsys.readouterr().out)
    assert (offline_result["text"], offline_result["words"]) == (final["text"], final["words"])


def test_websocket_resamples_other_rates(client, dev, offline):
    utt = next(u for u in dev if offline[u.path] == u.text)
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 8000}))
        assert ws.receive_json()["model_sample_rate"] == 16000
        ws.send_bytes(_pcm(utt.path, 8000))
        ws.send_text(json.dumps({"eof": 1}))
        while "final" not in (message := ws.receive_json()):
            pass
    assert message["text"] == utt.text


def test_websocket_survives_garbage_disconnects_and_idle_clients(client, dev):
    pcm = _pcm(dev[0].path)
    # A text frame mid-stream: closed with a reason.
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000}))
        ws.receive_json()
        ws.send_bytes(pcm[:3201])  # an odd number of bytes is kept for the next frame, not an error
        ws.send_text("garbage")
        assert "expected binary 16-bit PCM" in ws.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1003
    # A config that is not JSON.
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(b"\x01\x02")
        assert "JSON config" in ws.receive_json()["error"]
    # A client that leaves mid-stream.
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000}))
        ws.receive_json()
        ws.send_bytes(pcm[:8000])
    # An idle client (idle_timeout 1 s): closed with the reason.
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000}))
        ws.receive_json()
        assert "idle for 1 s" in ws.receive_json()["error"]
    # Everyone else is still served.
    with client.websocket_connect("/v1/stream") as ws:
        assert _stream(ws, pcm)[-1]["final"]
    _healthy(client)
    assert "ds2_active_streams 0" in client.get("/metrics").text


def test_too_many_streams_get_503_with_retry_after(client, dev):
    with client.websocket_connect("/v1/stream") as first, client.websocket_connect("/v1/stream") as second:
        for ws in (first, second):
            ws.send_text(json.dumps({"sample_rate": 16000}))
            ws.receive_json()
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect("/v1/stream"):
                pass
        assert denied.value.status_code == 503 and denied.value.headers["retry-after"] == "2"
    with client.websocket_connect("/v1/stream") as ws:  # the slots are free again
        assert _stream(ws, _pcm(dev[0].path))[-1]["final"]


def test_bidirectional_model_streams_by_redecoding(models, dev):
    recognizer = Recognizer.load(models["bidirectional"], engine="fp32", redecode_seconds=0.25)
    reference = Transcriber.from_checkpoint(models["bidirectional"], engine="fp32")
    utt = dev[0]
    with TestClient(create_app(recognizer)) as c:
        assert c.get("/v1/models").json()["data"][0]["mode"] == "redecode"
        with c.websocket_connect("/v1/stream") as ws:
            messages = _stream(ws, _pcm(utt.path), frame=1600)
    assert any("partial" in m for m in messages[:-1])
    assert messages[-1]["text"] == reference.transcribe(utt.path)["text"]


def test_beam_decoder_gives_the_final_text(models, dev, offline):
    """--decoder: the final text and timings come from the configured decoder (beam search here,
    without an LM), as `ds2 transcribe` with the same decoder gives them; partials stay greedy."""
    from deepspeech2.decoding import DecoderConfig

    decoder = DecoderConfig(type="beam", beam_width=16)
    recognizer = Recognizer.load(models["onnx"], decoder=decoder)
    reference = Transcriber.from_checkpoint(models["checkpoint"], engine="fp32", decoder=decoder)
    utt = next(u for u in dev if offline[u.path] == u.text)
    with TestClient(create_app(recognizer)) as c:
        assert c.get("/v1/models").json()["data"][0]["decoder"] == "beam(width=16)"
        body = c.post("/v1/transcribe", content=Path(utt.path).read_bytes()).json()
        with c.websocket_connect("/v1/stream") as ws:
            final = _stream(ws, _pcm(utt.path))[-1]
    expected = reference.transcribe(utt.path)
    assert body["decoder"] == final["decoder"] == "beam(width=16)"
    assert body["text"] == final["text"] == expected["text"] == utt.text
    assert body["words"] == final["words"] == expected["words"]


def test_api_key_on_every_endpoint(models, dev):
    app = create_app(Recognizer.load(models["onnx"]), ServeOptions(api_key="s3cret"))
    data = Path(dev[0].path).read_bytes()
    with TestClient(app) as c:
        for path in ("/healthz", "/v1/models", "/metrics"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/v1/transcribe", content=data).status_code == 401
        assert c.post("/v1/transcribe", content=data, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/transcribe", content=data, headers={"X-API-Key": "s3cret"}).status_code == 200
        with pytest.raises(WebSocketDenialResponse) as denied, c.websocket_connect("/v1/stream"):
            pass
        assert denied.value.status_code == 401
        with c.websocket_connect("/v1/stream?api_key=s3cret") as ws:
            assert _stream(ws, _pcm(dev[0].path))[-1]["final"]
        assert c.get("/").status_code == 200  # the page itself asks for the key


def test_real_server_binds_localhost_serves_concurrently_and_shuts_down_gracefully(models, dev):
    import httpx

    process, url = start_server(models["onnx"], "--allow-long", "--workers", "2")
    try:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # this machine's outward address
                probe.connect(("10.255.255.255", 1))
                outward = probe.getsockname()[0]
        except OSError:  # no network at all: nothing but loopback to reach
            outward = "127.0.0.1"
        if not outward.startswith("127."):
            with pytest.raises(httpx.ConnectError):
                httpx.get(url.replace("127.0.0.1", outward) + "/healthz", timeout=2)
        from deepspeech2.audio import load_audio

        # A long upload (over 5 minutes of audio) while short requests come and go.
        speech = load_audio(dev[0].path, 16000)
        long_samples = np.tile(np.concatenate([speech, np.zeros(16000, np.float32)]), 300)  # > 5 minutes
        long = _wav(long_samples)
        results: dict[str, httpx.Response] = {}
        worker = threading.Thread(target=lambda: results.setdefault(
            "long", httpx.post(url + "/v1/transcribe", content=long, timeout=120)))
        worker.start()
        deadline = time.time() + 30
        while httpx.get(url + "/healthz").json()["pending"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        short = Path(dev[1].path).read_bytes()
        started = time.perf_counter()
        quick = httpx.post(url + "/v1/transcribe", content=short, timeout=60)
        quick_seconds = time.perf_counter() - started
        assert quick.status_code == 200
        still_running = httpx.get(url + "/healthz").json()["pending"] >= 1
        process.send_signal(signal.SIGTERM)  # graceful: the long request in flight is finished
        worker.join(120)
        # uvicorn exits by re-raising the signal it handled, once the requests in flight are answered.
        assert process.wait(60) in (0, -signal.SIGTERM)
        assert results["long"].status_code == 200
        assert results["long"].json()["duration"] == pytest.approx(len(long_samples) / 16000, abs=0.01)
        assert still_running, f"the long request ended before the short one ({quick_seconds:.2f} s)"
    finally:
        if process.poll() is None:
            process.kill()
        output = process.stdout.read()
    assert "127.0.0.1" in output and "inference threads" in output
