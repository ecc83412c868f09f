"""ds2 serve under load, on this machine's loopback: N concurrent HTTP transcriptions and M
concurrent WebSocket streams against one server process.

    python benchmarks/serve_bench.py --model runs/mini-streaming/model-streaming.onnx \\
        --manifest runs/mini/corpus/test.jsonl --out runs/serve-bench

Measures, and writes to OUT/serve_bench.json and OUT/serve_bench.md:
  * HTTP: every answer checked against the same model's offline transcript (and scored
    against the reference text), p50/p95 latency, throughput in audio seconds per second;
  * WebSocket: each stream sends its file in 20 ms frames at real-time pace, then {"eof": 1};
    the streaming latency is end of speech (the eof sent) -> final text received, p50/p95;
    the final text is checked against the offline transcript;
  * the server's peak memory (VmHWM of its process).
The server binds 127.0.0.1 only; the whole run is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return round(float(jiwer.wer([r.lower() for r in references], [h.lower() or "-" for h in hypotheses])), 4)


def _peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(model: str, workers: int | None, extra: list[str]) -> tuple[subprocess.Popen, str, Path]:
    import httpx

    port = _free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_bench_{port}.log"
    command = [sys.executable, "-m", "deepspeech2", "serve", "--model", model, "--host", "127.0.0.1",
               "--port", str(port), "--max-streams", "64", *extra]
    if workers:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"ds2 serve exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url, log
        except httpx.HTTPError:
            time.sleep(0.25)
    process.kill()
    raise SystemExit("ds2 serve did not answer within 300 s")


async def http_load(url: str, files: list[dict], count: int) -> dict:
    import httpx

    picks = [files[i % len(files)] for i in range(count)]
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def one(item: dict) -> tuple[float, dict, int]:
            started = time.perf_counter()
            response = await client.post(url + "/v1/transcribe", content=item["bytes"],
                                         headers={"content-type": "audio/wav"})
            return time.perf_counter() - started, (response.json() if response.status_code == 200 else {}), \
                response.status_code

        started = time.perf_counter()
        results = await asyncio.gather(*(one(item) for item in picks))
        wall = time.perf_counter() - started
    latencies = [r[0] for r in results]
    ok = [r[2] == 200 and r[1].get("text") == item["offline"] for r, item in zip(results, picks, strict=True)]
    audio = sum(item["duration"] for item in picks)
    return {"requests": count, "answered_200": sum(r[2] == 200 for r in results), "correct": sum(ok),
            "wer": _wer([item["text"] for item in picks], [r[1].get("text", "") for r in results]),
            "wall_s": round(wall, 3), "audio_s": round(audio, 2), "throughput_audio_s_per_s": round(audio / wall, 2),
            "latency_p50_s": round(_percentile(latencies, 50), 3),
            "latency_p95_s": round(_percentile(latencies, 95), 3),
            "latency_max_s": round(max(latencies), 3)}


async def ws_load(url: str, files: list[dict], count: int, frame_ms: int = 20, realtime: bool = True) -> dict:
    import websockets

    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    picks = [files[i % len(files)] for i in range(count)]

    async def one(index: int, item: dict) -> dict:
        await asyncio.sleep(0.05 * index)  # staggered starts, as real users arrive
        frame = 16 * frame_ms * 2  # bytes of 16-bit PCM at 16 kHz
        pcm = item["pcm"]
        first_partial = None
        async with websockets.connect(ws_url, max_size=2**22) as ws:
            await ws.send(json.dumps({"sample_rate": 16000}))
            json.loads(await ws.recv())
            started = time.perf_counter()

            async def reader():
                nonlocal first_partial
                async for raw in ws:
                    message = json.loads(raw)
                    if "partial" in message and first_partial is None and message["partial"]:
                        first_partial = time.perf_counter() - started
                    if message.get("final") or "error" in message:
                        return message, time.perf_counter()
                return {}, time.perf_counter()

            reading = asyncio.create_task(reader())
            for position, start in enumerate(range(0, len(pcm), frame)):
                await ws.send(pcm[start: start + frame])
                if realtime:  # pace by the clock, not by sleeps, so the send rate stays real time
                    delay = started + (position + 1) * frame_ms / 1000 - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
            eof_at = time.perf_counter()
            await ws.send(json.dumps({"eof": 1}))
            final, final_at = await reading
        return {"latency": final_at - eof_at, "server_latency": final.get("latency", float("nan")),
                "text": final.get("text", ""), "reference": item["text"],
                "correct": final.get("text") == item["offline"], "first_partial": first_partial,
                "duration": item["duration"], "error": final.get("error")}

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(picks)))
    wall = time.perf_counter() - started
    latencies = [r["latency"] for r in results]
    partials = [r["first_partial"] for r in results if r["first_partial"] is not None]
    return {"streams": count, "correct": sum(r["correct"] for r in results),
            "wer": _wer([r["reference"] for r in results], [r["text"] for r in results]),
            "errors": [r["error"] for r in results if r["error"]], "wall_s": round(wall, 2),
            "audio_s": round(sum(r["duration"] for r in results), 2),
            "final_latency_p50_ms": round(1000 * _percentile(latencies, 50), 1),
            "final_latency_p95_ms": round(1000 * _percentile(latencies, 95), 1),
            "final_latency_max_ms": round(1000 * max(latencies), 1),
            "server_final_compute_p50_ms": round(1000 * _percentile([r["server_latency"] for r in results], 50), 1),
            "first_partial_p50_s": round(_percentile(partials, 50), 3) if partials else None}


def load_files(manifest: str, model: str, limit: int) -> tuple[list[dict], dict]:
    """Test files with the model's offline transcript (what every answer must equal) and their WER."""
    import io

    import jiwer
    import soundfile as sf

    from deepspeech2.audio import load_audio
    from deepspeech2.data.formats import read_any_manifest
    from deepspeech2.serve.streaming import Recognizer

    recognizer = Recognizer.load(model, threads=os.cpu_count() or 1)
    files = []
    for utt in read_any_manifest(manifest)[:limit]:
        pcm = (np.clip(load_audio(utt.path, 16000), -1, 1) * 32767).astype("<i2")
        buffer = io.BytesIO()
        sf.write(buffer, pcm, 16000, format="WAV", subtype="PCM_16")
        # What the server decodes from these bytes: the offline transcript every answer must equal.
        samples = (pcm / 32768.0).astype(np.float32)
        files.append({"path": utt.path, "text": utt.text, "duration": len(pcm) / 16000, "bytes": buffer.getvalue(),
                      "pcm": pcm.tobytes(), "offline": recognizer.transcribe(samples)["text"]})
    wer = jiwer.wer([f["text"].lower() for f in files], [f["offline"].lower() for f in files])
    return files, {"files": len(files), "offline_wer": round(float(wer), 4), "engine": recognizer.engine,
                   "mode": recognizer.mode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="what ds2 serve --model takes")
    parser.add_argument("--manifest", required=True, help="test utterances (cycled through)")
    parser.add_argument("--files", type=int, default=40, help="distinct test files")
    parser.add_argument("--requests", type=int, default=100, help="concurrent HTTP requests")
    parser.add_argument("--streams", type=int, default=20, help="concurrent WebSocket streams")
    parser.add_argument("--workers", type=int, help="the server's inference threads (default: the cores)")
    parser.add_argument("--out", default="runs/serve-bench")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    args = parser.parse_args(argv)

    files, reference = load_files(args.manifest, args.model, args.files)
    print(f"{reference['files']} test files; offline WER of this model {100 * reference['offline_wer']:.2f} % "
          f"({reference['engine']}, {reference['mode']})", flush=True)
    process, url, log = start_server(args.model, args.workers, [])
    report: dict = {"model": args.model, "cores": os.cpu_count(), **reference}
    try:
        async def run_all():
            report["single_stream"] = await ws_load(url, files, 1)
            report["http"] = await http_load(url, files, args.requests)
            report["websocket"] = await ws_load(url, files, args.streams)

        asyncio.run(asyncio.wait_for(run_all(), args.timeout))
        report["peak_memory_mb"] = round(_peak_memory_mb(process.pid), 1)
    finally:
        process.terminate()
        process.wait(60)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    http, ws, single = report["http"], report["websocket"], report["single_stream"]
    table = "\n".join([
        f"ds2 serve on {report['cores']} cores, {report['model']} ({report['engine']}, {report['mode']}); "
        f"offline WER on the {report['files']} files {100 * report['offline_wer']:.2f} %",
        "",
        "| load | = offline | WER | p50 | p95 | throughput | other |",
        "|---|---|---|---|---|---|---|",
        f"| {http['requests']} concurrent HTTP requests | {http['correct']}/{http['requests']} | "
        f"{100 * http['wer']:.1f} % | "
        f"{http['latency_p50_s']:.2f} s | {http['latency_p95_s']:.2f} s | "
        f"{http['throughput_audio_s_per_s']:.1f} audio s/s | "
        f"{http['audio_s']:.0f} s of audio in {http['wall_s']:.1f} s |",
        f"| {ws['streams']} concurrent WebSocket streams (real time) | {ws['correct']}/{ws['streams']} | "
        f"{100 * ws['wer']:.1f} % | "
        f"{ws['final_latency_p50_ms']:.0f} ms | {ws['final_latency_p95_ms']:.0f} ms | "
        f"{ws['audio_s'] / ws['wall_s']:.1f} audio s/s | end of speech -> final text; first partial after "
        f"{ws['first_partial_p50_s']} s (median) |",
        f"| 1 WebSocket stream (real time) | {single['correct']}/1 | - | "
        f"{single['final_latency_p50_ms']:.0f} ms | - | - | "
        f"end of speech -> final text |",
        "",
        f"Peak memory of the server process: {report['peak_memory_mb']:.0f} MB. '= offline': answers whose text "
        "equals the same model's offline transcript of the same samples; WER against the reference texts.",
    ])
    (out / "serve_bench.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
