"""The model the ds2 serve tests run: a unidirectional tiny model (forward GRUs, lookahead
convolution, unnormalised features) trained on two FSDD digits, its streaming ONNX export and
a bidirectional model for the re-decoding mode. Trained once per test session (about 20 s),
whichever serve test module asks first."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_config
from deepspeech2.config import Config
from deepspeech2.train import train


def streaming_config(train_manifest: Path, dev_manifest: Path, cache_dir: Path, **train_options) -> Config:
    values = tiny_config(train_manifest, dev_manifest, cache_dir, **{"epochs": 22, "lr": 5e-3, **train_options})
    values = values.to_dict()
    values["model"].update(bidirectional=False, lookahead_context=5)
    values["audio"]["normalize"] = False
    return Config.from_dict(values)


def served_models(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: dict[str, Path]) -> dict[str, Path]:
    """{"checkpoint", "onnx" (streaming export), "bidirectional" (a checkpoint), "dev" (manifest)}."""
    from deepspeech2.serve.streaming import export_streaming

    out = tmp_path_factory.getbasetemp() / "serve_models"
    models = {"checkpoint": out / "uni" / "best.pt", "onnx": out / "uni-streaming.onnx",
              "bidirectional": out / "bi" / "best.pt", "dev": tiny_corpus["dev"]}
    if models["onnx"].exists():
        return models
    out.mkdir(exist_ok=True)
    train(streaming_config(tiny_corpus["train"], tiny_corpus["dev"], out / "features"), out / "uni")
    train(tiny_config(tiny_corpus["train"], tiny_corpus["dev"], out / "features-bi", epochs=6), out / "bi")
    export_streaming(models["checkpoint"], models["onnx"])
    return models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``ds2 serve`` in a process of its own; returns it and its base URL once it answers."""
    import httpx

    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "deepspeech2", "serve", "--model", str(model),
                                "--port", str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # a loaded CI machine may take long to import
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ds2 serve exited: {process.stdout.read()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"ds2 serve did not answer within 300 s: {process.stdout.read()}")
