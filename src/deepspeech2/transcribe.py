"""Transcribe audio files with a checkpoint (PyTorch) or an exported ONNX model.

The ONNX path needs numpy, soundfile, soxr and onnxruntime only: no torch. Files
longer than the training maximum are cut into chunks of at most that length, each
decoded on its own, and the word timings shifted by the chunk's start.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import onnx_contract as contract
from .audio import load_audio, spectrogram
from .config import Config
from .data.dataset import Batch
from .decoding import Decoder, DecoderConfig, path_text, path_words
from .text import Alphabet

ENGINES = ("auto", "fp32", "int8")  # for checkpoints; an exported model runs on ONNX Runtime


class Transcriber:
    def __init__(self, cfg: Config, log_probs_fn, engine: str, chunk_seconds: float | None = None,
                 decoder: DecoderConfig | None = None):
        self.cfg = cfg
        self.alphabet = Alphabet(cfg.text.blank)
        self.decoder = Decoder(decoder, self.alphabet)  # greedy unless decoder says beam
        self.spec = cfg.audio.feature_spec()
        self.log_probs = log_probs_fn  # Batch -> (log_probs, lengths), as a backend's
        self.engine = engine
        self.frame_seconds = cfg.audio.hop_length / cfg.audio.sample_rate * cfg.model.time_stride
        self.chunk_seconds = chunk_seconds or cfg.data.max_duration

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None,
                        chunk_seconds: float | None = None, engine: str = "auto",
                        decoder: DecoderConfig | None = None) -> Transcriber:
        """``engine``: ``fp32`` (the checkpoint's backend as trained: exact), ``int8`` (torch
        with int8 dynamic quantization, CPU) or ``auto``: the fastest, int8 for a PyTorch
        model on CPU (at the official size 2.5x faster than fp32 PyTorch or ONNX Runtime;
        +0.07 / +0.48 WER points on the mini corpus's two test sets), else fp32."""
        from .backends.base import quantize_int8
        from .checkpoints import load_backend

        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
        cfg, backend = load_backend(path, device=device or "cpu")
        on_cpu = getattr(getattr(backend, "device", None), "type", "") == "cpu"
        if engine == "int8" or (engine == "auto" and on_cpu and hasattr(backend, "quantize_int8")):
            quantize_int8(backend)
            return cls(cfg, backend.log_probs, f"{backend.name}-int8", chunk_seconds, decoder)
        return cls(cfg, backend.log_probs, backend.name, chunk_seconds, decoder)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int = 0, chunk_seconds: float | None = None,
                  decoder: DecoderConfig | None = None) -> Transcriber:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such ONNX model (export one with `ds2 export`)")
        session = contract.open_session(path, threads)
        config, quantization = contract.read_metadata(session, path)
        cfg = Config.from_dict(config, str(path))
        engine = "onnxruntime-int8" if quantization == contract.INT8_DYNAMIC else "onnxruntime"

        def log_probs(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
            return contract.run(session, batch.features, batch.feature_lengths)

        return cls(cfg, log_probs, engine, chunk_seconds, decoder)

    def _chunks(self, samples: np.ndarray) -> list[tuple[float, np.ndarray]]:
        limit = int(self.chunk_seconds * self.spec.sample_rate)
        if limit <= 0 or len(samples) <= limit:
            return [(0.0, samples)]
        # Equal chunks no longer than the limit, so no tiny tail is normalised on its own.
        count = -(-len(samples) // limit)
        size = -(-len(samples) // count)
        return [(start / self.spec.sample_rate, samples[start: start + size]) for start in range(0, len(samples), size)]

    def transcribe(self, path: str | Path) -> dict:
        """{"path", "text", "duration", "words": [{"word", "start", "end"}]} for one file."""
        return {"path": str(path), **self.transcribe_samples(load_audio(path, self.spec.sample_rate))}

    def transcribe_samples(self, samples: np.ndarray) -> dict:
        """{"text", "duration", "words"} of mono float32 samples at the model's sample rate."""
        texts, words = [], []
        for offset, chunk in self._chunks(samples):
            features = spectrogram(chunk, self.spec)[None]
            batch = Batch(features, np.array([features.shape[2]], dtype=np.int64), np.zeros((1, 1), np.int64),
                          np.zeros(1, np.int64), [""], [""])
            log_probs, lengths = self.log_probs(batch)
            path = self.decoder.path(log_probs[0], int(lengths[0]))  # one search for the text and the timings
            texts.append(path_text(path, self.alphabet))
            words += path_words(path, self.alphabet, self.frame_seconds, offset)
        return {"text": " ".join(t for t in texts if t),
                "duration": round(len(samples) / self.spec.sample_rate, 3),
                "words": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(w).items()}
                          for w in words]}
