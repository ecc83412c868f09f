"""``ds2 serve``: HTTP and WebSocket speech recognition (FastAPI + uvicorn).

Endpoints (``create_app``):

    POST /v1/transcribe             an audio file (multipart ``file`` or the raw body) -> text, words, timings
    POST /v1/audio/transcriptions   the OpenAI-compatible endpoint (``file``, ``model``, ``response_format``)
    WS   /v1/stream                 {"sample_rate": 16000, "words": true}, binary 16-bit PCM, {"eof": 1}
    GET  /healthz, /v1/models, /metrics (Prometheus text)
    GET  /                          the web page (static/: microphone over the WebSocket, file upload)

Inference runs in a thread pool sized to the cores (ONNX Runtime and PyTorch release the
GIL), so the event loop keeps answering while a long file is decoded. Limits: the upload
size (413 from Content-Length before reading, or as soon as the streamed body passes it),
the audio duration (413, or transcribed in pieces with ``allow_long``), concurrent streams
(503 + Retry-After), idle streams (closed with a reason), queued requests (503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect, WebSocketState

from .streaming import Recognizer

STATIC = Path(__file__).parent / "static"
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Content types that are certainly not audio: refused with 415 before decoding.
NOT_AUDIO = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded", "image/")


@dataclass
class ServeOptions:
    max_upload_bytes: int = 50 * 2**20
    max_audio_seconds: float = 600.0
    allow_long: bool = False  # longer audio is transcribed in pieces instead of refused
    max_streams: int = 32
    max_stream_seconds: float = 3600.0
    idle_timeout: float = 30.0  # seconds without a message before a stream is closed
    max_pending: int = 256  # HTTP transcriptions waiting or running, beyond which: 503
    retry_after: int = 2
    workers: int = 0  # inference threads; 0: the cores
    api_key: str | None = None


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class BodyTooLarge(Exception):
    pass


class Metrics:
    """Counters and a latency histogram, written in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self.audio_seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.streams_total = 0
        self.active_streams = 0
        self.pending = 0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[endpoint, status] = self.requests.get((endpoint, status), 0) + 1
        if status >= 400:
            self.errors[endpoint] = self.errors.get(endpoint, 0) + 1
        index = next((i for i, b in enumerate(LATENCY_BUCKETS) if seconds <= b), len(LATENCY_BUCKETS))
        self.buckets[index] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def render(self) -> str:
        lines = ["# HELP ds2_requests_total Requests answered, by endpoint and status.",
                 "# TYPE ds2_requests_total counter"]
        lines += [f'ds2_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                  for (e, s), n in sorted(self.requests.items())]
        lines += ["# HELP ds2_errors_total Requests answered with an error (status >= 400, or a stream closed by one).",
                  "# TYPE ds2_errors_total counter"]
        lines += [f'ds2_errors_total{{endpoint="{e}"}} {n}' for e, n in sorted(self.errors.items())]
        lines += ["# HELP ds2_audio_seconds_total Seconds of audio transcribed.",
                  "# TYPE ds2_audio_seconds_total counter",
                  f"ds2_audio_seconds_total {self.audio_seconds:.3f}",
                  "# HELP ds2_request_latency_seconds Time from request to answer (streams: to the final text).",
                  "# TYPE ds2_request_latency_seconds histogram"]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), self.buckets, strict=True):
            cumulative += count
            lines.append(f'ds2_request_latency_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines += [f"ds2_request_latency_seconds_sum {self.latency_sum:.6f}",
                  f"ds2_request_latency_seconds_count {self.latency_count}",
                  "# TYPE ds2_streams_total counter", f"ds2_streams_total {self.streams_total}",
                  "# TYPE ds2_active_streams gauge", f"ds2_active_streams {self.active_streams}",
                  "# TYPE ds2_pending_requests gauge", f"ds2_pending_requests {self.pending}"]
        return "\n".join(lines) + "\n"


class Guard:
    """ASGI middleware in front of everything: the upload limit (413 from the Content-Length
    header without reading the body, or as soon as the bytes received pass the limit), the API
    key on the API paths, and the request metrics."""

    def __init__(self, app, limit: int, authorized: Callable[[dict, dict], bool], metrics: Metrics):
        self.app, self.limit, self.authorized, self.metrics = app, limit, authorized, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        api = path.startswith("/v1/") or path in ("/healthz", "/metrics")
        started = time.perf_counter()
        status = 500
        response_started = False

        async def tracking_send(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        length = headers.get("content-length", "")
        try:
            if api and not self.authorized(headers, query):
                await _send_json(tracking_send, 401, {"error": "missing or wrong API key "
                                                               "(Authorization: Bearer KEY or X-API-Key)"},
                                 [(b"www-authenticate", b"Bearer")])
            elif length.isdigit() and int(length) > self.limit:
                await _send_413(tracking_send, self.limit, int(length))
            else:
                received = 0

                async def limited_receive():
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > self.limit:
                            raise BodyTooLarge
                    return message

                try:
                    await self.app(scope, limited_receive, tracking_send)
                except BodyTooLarge:
                    if not response_started:
                        await _send_413(tracking_send, self.limit, None)
        finally:
            if api and path != "/metrics":
                self.metrics.request(path, status, time.perf_counter() - started)


async def _send_json(send, status: int, content: dict, headers: list | None = None) -> None:
    body = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _send_413(send, limit: int, length: int | None) -> None:
    size = f"{length} bytes" if length is not None else "more"
    await _send_json(send, 413, {"error": f"upload too large: {size}, the limit is {limit} bytes (--max-upload-mb)"},
                     [(b"connection", b"close")])


def decode_audio(data: bytes | io.IOBase, name: str, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` from an encoded file (WAV, FLAC, OGG Vorbis/Opus,
    whatever libsndfile reads); HTTPError 400 with the reason when it is not audio, 413 when too long."""
    import soundfile as sf
    import soxr

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        info = sf.info(source)
        source.seek(0)
    except Exception as e:
        raise HTTPError(400, f"{name}: not decodable audio ({_reason(e)}); "
                             "send WAV, FLAC or OGG (Vorbis/Opus)") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise HTTPError(400, f"{name}: the audio is empty")
    duration = info.frames / info.samplerate
    if max_seconds is not None and duration > max_seconds:
        raise HTTPError(413, f"{name}: {duration:.1f} s of audio, the limit is {max_seconds:g} s "
                             f"(--max-audio-seconds; --allow-long transcribes it in pieces)")
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as e:
        raise HTTPError(400, f"{name}: cannot decode the audio ({_reason(e)})") from None
    if samples.size == 0:
        raise HTTPError(400, f"{name}: the audio is empty")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _reason(error: Exception) -> str:
    return re.sub(r"<_io\.\w+ object at 0x[0-9a-f]+>|<tempfile\.\w+ object at 0x[0-9a-f]+>", "the upload",
                  str(error)).strip() or type(error).__name__


def _timestamp(seconds: float, separator: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def segments(words: list[dict], pause: float = 0.8, max_words: int = 12) -> list[dict]:
    """Subtitle cues from word timings: a new cue after a pause or ``max_words`` words."""
    cues: list[dict] = []
    for word in words:
        if not cues or word["start"] - cues[-1]["end"] > pause or len(cues[-1]["words"]) >= max_words:
            cues.append({"start": word["start"], "end": word["end"], "words": []})
        cues[-1]["words"].append(word["word"])
        cues[-1]["end"] = word["end"]
    return [{"id": i, "start": c["start"], "end": c["end"], "text": " ".join(c["words"])} for i, c in enumerate(cues)]


def subtitles(words: list[dict], fmt: str) -> str:
    separator = "," if fmt == "srt" else "."
    blocks = [] if fmt == "srt" else ["WEBVTT", ""]
    for cue in segments(words):
        timing = f"{_timestamp(cue['start'], separator)} --> {_timestamp(cue['end'], separator)}"
        blocks += ([str(cue["id"] + 1)] if fmt == "srt" else []) + [timing, cue["text"], ""]
    return "\n".join(blocks) + ("\n" if not blocks else "")


def create_app(recognizer: Recognizer, options: ServeOptions | None = None):
    """The FastAPI application serving ``recognizer``."""
    decoder_name = recognizer.decoder_name
    options = options or ServeOptions()
    workers = options.workers or os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="ds2-infer")
    metrics = Metrics()
    app = FastAPI(title="deepspeech2", version="1", docs_url="/docs", redoc_url=None)
    app.state.recognizer, app.state.options, app.state.metrics, app.state.pool = recognizer, options, metrics, pool

    async def in_pool(fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def authorized(headers, query) -> bool:
        if not options.api_key:
            return True
        given = headers.get("x-api-key") or query.get("api_key") or ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), options.api_key.encode())

    @app.exception_handler(HTTPError)
    async def http_error(request: Request, e: HTTPError):
        return JSONResponse({"error": e.message}, e.status, headers=e.headers)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, e: BodyTooLarge):
        return JSONResponse({"error": f"upload too large: more than {options.max_upload_bytes} bytes "
                                      "(--max-upload-mb)"}, 413, headers={"Connection": "close"})

    async def read_upload(request: Request, field: str = "file") -> tuple[bytes | io.IOBase, str, dict]:
        """The audio of a request (multipart ``field`` or the raw body) and the other form fields."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            try:
                form = await request.form(max_part_size=options.max_upload_bytes)
            except BodyTooLarge:
                raise
            except Exception as e:  # python-multipart's parse errors
                raise HTTPError(400, f"malformed multipart body ({e})") from None
            upload = form.get(field)
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            if upload is None or isinstance(upload, str):
                raise HTTPError(400, f"multipart field {field!r} with the audio file is missing")
            if upload.content_type and upload.content_type.startswith(NOT_AUDIO):
                raise HTTPError(415, f"{upload.filename}: content type {upload.content_type} is not audio")
            data = await upload.read()
            return data, upload.filename or field, fields
        if content_type.startswith(NOT_AUDIO):
            raise HTTPError(415, f"content type {content_type} is not audio; send an audio file as the body "
                                 "or as the multipart field 'file'")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        if not body:
            raise HTTPError(400, "empty body: send an audio file (WAV, FLAC, OGG) as the body or multipart 'file'")
        return bytes(body), "body", dict(request.query_params)

    async def transcribe_upload(request: Request, check_fields: Callable[[dict], None] | None = None
                                ) -> tuple[dict, dict]:
        if metrics.pending >= options.max_pending:
            raise HTTPError(503, f"server busy: {metrics.pending} transcriptions in progress",
                            {"Retry-After": str(options.retry_after)})
        data, name, fields = await read_upload(request)
        if check_fields is not None:
            check_fields(fields)  # before any decoding
        metrics.pending += 1
        try:
            started = time.perf_counter()
            max_seconds = None if options.allow_long else options.max_audio_seconds
            samples = await in_pool(decode_audio, data, name, recognizer.sample_rate, max_seconds)
            result = await in_pool(recognizer.transcribe, samples)
        finally:
            metrics.pending -= 1
        metrics.audio_seconds += result["duration"]
        result.update(engine=recognizer.engine, decoder=decoder_name, elapsed=round(time.perf_counter() - started, 3))
        return result, fields

    @app.post("/v1/transcribe")
    async def transcribe(request: Request):
        result, _ = await transcribe_upload(request)
        return result

    def check_response_format(fields: dict) -> None:
        fmt = fields.get("response_format", "json")
        if fmt not in RESPONSE_FORMATS:
            raise HTTPError(400, f"response_format {fmt!r}: choose one of {', '.join(RESPONSE_FORMATS)}")

    @app.post("/v1/audio/transcriptions")
    async def openai_transcriptions(request: Request):
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPError(400, "the OpenAI endpoint takes multipart/form-data with the field 'file'")
        result, fields = await transcribe_upload(request, check_response_format)
        fmt = fields.get("response_format", "json")
        if fmt == "json":
            return {"text": result["text"]}
        if fmt == "text":
            return PlainTextResponse(result["text"] + "\n")
        if fmt in ("srt", "vtt"):
            media = "application/x-subrip" if fmt == "srt" else "text/vtt"
            return PlainTextResponse(subtitles(result["words"], fmt), media_type=media)
        return {"task": "transcribe", "language": "english", "duration": result["duration"], "text": result["text"],
                "words": result["words"],
                "segments": [{**s, "seek": 0, "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                              "compression_ratio": 0.0, "no_speech_prob": 0.0} for s in segments(result["words"])]}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": Path(recognizer.path).name, "mode": recognizer.mode,
                "active_streams": metrics.active_streams, "pending": metrics.pending}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [recognizer.describe()]}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, limit=options.max_upload_bytes, authorized=authorized, metrics=metrics)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        if not authorized(ws.headers, ws.query_params):
            await _deny(ws, 401, "missing or wrong API key", {})
            return
        if metrics.active_streams >= options.max_streams:
            metrics.errors["/v1/stream"] = metrics.errors.get("/v1/stream", 0) + 1
            await _deny(ws, 503, f"too many streams ({options.max_streams}); retry later",
                        {"Retry-After": str(options.retry_after)})
            return
        metrics.active_streams += 1
        metrics.streams_total += 1
        try:
            await ws.accept()
            await _run_stream(ws)
        except WebSocketDisconnect:
            pass  # the client left: its session is dropped, the others go on
        finally:
            metrics.active_streams -= 1

    async def _deny(ws: WebSocket, status: int, reason: str, headers: dict[str, str]) -> None:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(JSONResponse({"error": reason}, status, headers=headers))
        else:
            await ws.close(1013 if status == 503 else 1008, reason)

    async def close(ws: WebSocket, code: int, reason: str) -> None:
        metrics.errors["/v1/stream"] = metrics.errors.get("/v1/stream", 0) + 1
        if ws.client_state == WebSocketState.CONNECTED:
            try:
                await ws.send_json({"error": reason})
                await ws.close(code, reason[:120])
            except Exception:
                pass

    async def receive(ws: WebSocket) -> dict | None:
        try:
            return await asyncio.wait_for(ws.receive(), options.idle_timeout)
        except asyncio.TimeoutError:
            await close(ws, 1001, f"idle for {options.idle_timeout:g} s: stream closed")
            return None

    async def _run_stream(ws: WebSocket) -> None:
        message = await receive(ws)
        if message is None or message["type"] == "websocket.disconnect":
            return
        try:
            config = json.loads(message.get("text") or "")
            sample_rate = int(config.get("sample_rate", 16000))
            if not 8000 <= sample_rate <= 192000:
                raise ValueError(f"sample_rate {sample_rate} out of range 8000-192000")
            want_words = bool(config.get("words", False))
        except (ValueError, TypeError, AttributeError) as e:
            await close(ws, 1003, f"the first message must be a JSON config like {{\"sample_rate\": 16000}} ({e})")
            return
        session = recognizer.new_stream()
        await ws.send_json({"ready": True, "mode": recognizer.mode, "sample_rate": sample_rate,
                            "model_sample_rate": recognizer.sample_rate})
        started = time.perf_counter()
        odd = b""
        last_partial = None
        max_samples = options.max_stream_seconds * sample_rate
        received = 0
        while True:
            message = await receive(ws)
            if message is None:
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                data = odd + message["bytes"]
                odd = data[len(data) // 2 * 2:]
                pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
                received += len(pcm)
                if received > max_samples:
                    await close(ws, 1009, f"stream longer than {options.max_stream_seconds:g} s: closed")
                    return
                if sample_rate != recognizer.sample_rate and len(pcm):
                    pcm = await in_pool(_resample, pcm, sample_rate, recognizer.sample_rate)
                if not await in_pool(session.accept, pcm):
                    continue
                text = session.text()
                if text != last_partial:
                    last_partial = text
                    await ws.send_json({"partial": text})
                segment = session.pause_segment()
                if segment is not None:
                    if not want_words:
                        segment.pop("words")
                    await ws.send_json(segment)
                continue
            text = message.get("text") or ""
            try:
                eof = json.loads(text).get("eof")
            except (ValueError, AttributeError):
                eof = None
            if not eof:
                await close(ws, 1003, "expected binary 16-bit PCM frames or {\"eof\": 1}, got a text frame "
                                      f"{text[:40]!r}")
                return
            ended = time.perf_counter()
            final = await in_pool(session.finish)
            result = {"text": final["text"], "final": True, "duration": round(session.seconds, 3),
                      "engine": recognizer.engine, "decoder": decoder_name}
            if want_words:
                result["words"] = final["words"]
            result["latency"] = round(time.perf_counter() - ended, 4)  # end of audio -> final text
            await ws.send_json(result)
            metrics.audio_seconds += session.seconds
            metrics.request("/v1/stream", 200, time.perf_counter() - started)
            await ws.close(1000, "done")
            return

    return app


def _resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    import soxr

    return soxr.resample(pcm, rate, target, quality="HQ").astype(np.float32)


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, options: ServeOptions | None = None,
          decoder: str | None = None, engine: str = "auto", log_level: str = "info") -> None:
    """Load ``model`` and serve it until SIGINT/SIGTERM (requests in flight are finished first)."""
    import uvicorn

    options = options or ServeOptions()
    workers = options.workers or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // workers)
    decoder_cfg = None
    if decoder:
        from ..decoding import load_decoder_config

        decoder_cfg = load_decoder_config(decoder)
    recognizer = Recognizer.load(model, threads=threads, engine=engine, decoder=decoder_cfg)
    app = create_app(recognizer, options)
    where = "all interfaces" if host in ("0.0.0.0", "::") else host
    print(f"ds2 serve: {recognizer.path} ({recognizer.engine}, {recognizer.mode} streaming) on http://{host}:{port}/ "
          f"[{where}; {workers} inference threads{'; API key required' if options.api_key else ''}]", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30, ws_max_size=2**20)

