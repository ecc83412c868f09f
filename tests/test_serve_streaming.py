"""Streaming inference equals offline inference: the spectrogram piece by piece, the network
chunk by chunk (PyTorch and the ONNX export with state inputs/outputs), whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepspeech2 import onnx_contract as contract
from deepspeech2.audio import FeatureSpec, spectrogram
from deepspeech2.backends.torch.model import DeepSpeech2
from deepspeech2.backends.torch.streaming import StreamingStep, export_streaming_onnx
from deepspeech2.config import Config, load_config
from deepspeech2.recipes import config_path
from deepspeech2.serve.streaming import (
    STREAMING_KEY,
    Recognizer,
    StreamingEngine,
    StreamingLayout,
    StreamingSession,
    StreamingSpectrogram,
    can_stream,
)


def _pieces(samples: np.ndarray, rng: np.random.Generator, largest: int):
    start = 0
    while start < len(samples):
        size = int(rng.integers(1, largest))
        yield samples[start: start + size]
        start += size


@pytest.mark.parametrize("num_samples", [1, 100, 161, 400, 16_000, 33_333])
@pytest.mark.parametrize("spec", [FeatureSpec(normalize=False), FeatureSpec(n_fft=512, normalize=False, n_mels=80)],
                         ids=["linear", "mel"])
def test_streaming_spectrogram_equals_the_offline_one(num_samples, spec):
    rng = np.random.default_rng(num_samples)
    samples = (rng.standard_normal(num_samples) * 0.1).astype(np.float32)
    stream = StreamingSpectrogram(spec)
    frames = [stream.push(piece) for piece in _pieces(samples, rng, 700)] + [stream.finish()]
    streamed, offline = np.concatenate(frames, axis=1), spectrogram(samples, spec)
    if spec.n_mels:  # the mel matmul may round differently with another number of frames
        np.testing.assert_allclose(streamed, offline, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(streamed, offline)


def test_normalised_features_cannot_stream():
    with pytest.raises(ValueError, match="normalisation"):
        StreamingSpectrogram(FeatureSpec(normalize=True))
    assert not can_stream(Config.from_dict({"model": {"bidirectional": False}}))
    assert can_stream(load_config(config_path("mini_streaming")))


def _model(rnn_type: str, strides: list, context: int) -> tuple[Config, DeepSpeech2]:
    cfg = Config.from_dict({
        "audio": {"normalize": False},
        "model": {"conv_channels": [4, 4], "conv_kernels": [[21, 11], [11, 11]], "conv_strides": strides,
                  "rnn_type": rnn_type, "rnn_hidden": 24, "rnn_layers": 2, "rnn_batchnorm": True,
                  "bidirectional": False, "lookahead_context": context}})
    torch.manual_seed(0)
    model = DeepSpeech2(cfg.model, 161, 29).eval()
    for module in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return cfg, model


def _offline(model: DeepSpeech2, samples: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    features = spectrogram(samples, spec)
    with torch.inference_mode():
        log_probs, _ = model(torch.from_numpy(features)[None], torch.tensor([features.shape[1]]))
    return log_probs[0].numpy()


def _stream(recognizer: Recognizer, samples: np.ndarray, rng: np.random.Generator, largest: int) -> np.ndarray:
    session = StreamingSession(recognizer)
    steps = sum(session.accept(piece) for piece in _pieces(samples, rng, largest))
    session.finish()
    assert steps >= 1 or len(samples) < 16_000  # long audio is processed while it arrives, not at the end
    return session.log_probs


@pytest.mark.parametrize("rnn_type,strides,context,seconds", [
    ("lstm", [[2, 3], [2, 1]], 5, 2.3),   # the mini_streaming layout
    ("gru", [[2, 2], [2, 1]], 20, 1.7),   # the tiny test model's, with the default lookahead
    ("lstm", [[2, 2], [2, 2]], 0, 0.9),   # strides in both convolutions, no lookahead
    ("gru", [[2, 3], [2, 1]], 5, 0.05),   # shorter than one chunk: all of it at the end
])
def test_chunked_inference_equals_offline(rnn_type, strides, context, seconds):
    cfg, model = _model(rnn_type, strides, context)
    rng = np.random.default_rng(1)
    samples = (rng.standard_normal(int(seconds * 16_000)) * 0.1).astype(np.float32)
    expected = _offline(model, samples, cfg.audio.feature_spec())
    recognizer = Recognizer(cfg, "random", "torch-streaming", StreamingEngine.from_torch(model, cfg, "torch"))
    for largest in (320, 4_000, 40_000):  # 10 ms to 2.5 s pieces
        got = _stream(recognizer, samples, rng, largest)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-5)
        assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_onnx_streaming_export_has_state_inputs_and_outputs_and_matches(tmp_path):
    cfg, model = _model("lstm", [[2, 3], [2, 1]], 5)
    layout = StreamingLayout(cfg)
    assert layout.names == StreamingStep(model).names
    example = {**layout.initial_state(), **layout.tails(final=True),
               "lookahead_cache": np.zeros((5, 1, 24), np.float32),
               "features": np.random.default_rng(0).standard_normal((1, 161, 24)).astype(np.float32)}
    path = export_streaming_onnx(model, tmp_path / "s.onnx", example,
                                 {**contract.config_metadata(cfg.to_dict()), STREAMING_KEY: "1"})
    recognizer = Recognizer.load(path)
    assert recognizer.mode == "streaming" and recognizer.engine == "onnxruntime-streaming"
    import onnxruntime as ort

    onnx_session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in onnx_session.get_inputs()]
    outputs = [o.name for o in onnx_session.get_outputs()]
    assert inputs == ["features", *layout.names]
    assert outputs == ["log_probs"] + [f"{n}_out" for n in layout.names if "_tail" not in n]
    assert "rnn0_h" in inputs and "rnn1_c_out" in outputs and "lookahead_cache_out" in outputs
    rng = np.random.default_rng(2)
    samples = (rng.standard_normal(40_000) * 0.1).astype(np.float32)
    expected = _offline(model, samples, cfg.audio.feature_spec())
    for largest in (500, 8_000):
        got = _stream(recognizer, samples, rng, largest)
        np.testing.assert_allclose(got, expected, atol=5e-5)
    np.testing.assert_allclose(recognizer.transcribe_log_probs(samples), expected, atol=5e-5)


def test_a_long_pause_ends_a_segment():
    """After some text, pause_seconds of blank output send that segment's text (once)."""
    cfg, model = _model("gru", [[2, 3], [2, 1]], 5)
    recognizer = Recognizer(cfg, "random", "torch-streaming", StreamingEngine.from_torch(model, cfg, "torch"),
                            pause_seconds=0.3)
    alphabet = recognizer.alphabet
    frames_per_second = round(1 / recognizer.frame_seconds)

    def frames(label: str, count: int) -> np.ndarray:
        lp = np.full((count, len(alphabet)), -10.0, np.float32)
        lp[:, alphabet.blank_id if label == "_" else alphabet.labels.index(label)] = 0.0
        return lp

    session = StreamingSession(recognizer)
    session.log_probs = np.concatenate([frames("_", 5), frames("H", 2), frames("I", 2), frames("_", 3)])
    assert session.pause_segment() is None  # 3 blank frames: not yet a pause
    session.log_probs = np.concatenate([session.log_probs, frames("_", frames_per_second)])
    segment = session.pause_segment()
    assert segment["text"] == "HI" and segment["segment"] == 0
    assert segment["words"][0] == {"word": "HI", "start": round(5 * recognizer.frame_seconds, 3),
                                   "end": round(9 * recognizer.frame_seconds, 3)}
    assert session.pause_segment() is None  # sent once; silence alone is no segment
    session.log_probs = np.concatenate([session.log_probs, frames("O", 2), frames("_", frames_per_second)])
    later = session.pause_segment()
    assert later["text"] == "O" and later["segment"] == 1 and later["words"][0]["start"] > segment["words"][0]["end"]
