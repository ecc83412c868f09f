"""deepspeech.pytorch checkpoints: V3 Lightning .ckpt and V2 .pth in the released key layout, built
from the published architecture with random weights (tests/deepspeech_pytorch_fixtures.py),
convert to our checkpoints whose log-probabilities equal the reference forward pass; pickles
that would run code are refused without running it; wrong architectures and labels are named;
the converted model exports to int8 ONNX."""

from __future__ import annotations

import io
import pickle
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from deepspeech2.backends.base import CheckpointMismatch, create_backend
from deepspeech2.backends.torch.deepspeech_pytorch import (
    UnsafeCheckpointError,
    convert_deepspeech_pytorch,
    describe,
    load_deepspeech_pytorch,
)
from deepspeech2.checkpoints import read_config
from deepspeech2.cli import main as ds2
from deepspeech2.data.dataset import Batch
from deepspeech2.data.manifest import Utterance, write_manifest
from deepspeech_pytorch_fixtures import (
    LABELS,
    ReferenceDeepSpeech,
    fake_packages,
    lightning_checkpoint,
    randomize,
    reference_log_probs,
    save_lightning_checkpoint,
)


def converted_log_probs(pt: Path, features: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    backend = create_backend(read_config(pt), "cpu")
    backend.load(pt, training_state=False)
    batch = Batch(features, lengths, np.zeros((len(lengths), 1), np.int64), np.zeros(len(lengths), np.int64),
                  [""] * len(lengths), [""] * len(lengths))
    return backend.log_probs(batch)


def random_batch(bins: int, lengths: list[int], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((len(lengths), bins, max(lengths))).astype(np.float32)
    for i, n in enumerate(lengths):
        features[i, :, n:] = 0.0  # padded as our batches are
    return features, np.array(lengths, dtype=np.int64)


def assert_same_log_probs(pt: Path, reference: ReferenceDeepSpeech, bins: int) -> None:
    features, lengths = random_batch(bins, [83, 52, 20])
    ours, our_lengths = converted_log_probs(pt, features, lengths)
    theirs, their_lengths = reference_log_probs(reference, features, lengths)
    assert our_lengths.tolist() == their_lengths.tolist()
    for i, n in enumerate(our_lengths):
        np.testing.assert_allclose(ours[i, :n], theirs[i, :n].numpy(), atol=1e-4, rtol=0)
    # The random network is not trivial: its output follows the input frame by frame.
    assert ours[0, : our_lengths[0]].std(axis=0).max() > 0.05


@pytest.mark.parametrize("rnn_type,bidirectional,layers", [("lstm", True, 3), ("gru", False, 2), ("rnn", True, 2)])
def test_v3_checkpoint_converts_to_the_same_log_probs(tmp_path, rnn_type, bidirectional, layers):
    ckpt = tmp_path / "model.ckpt"
    reference = save_lightning_checkpoint(ckpt, rnn_type=rnn_type, bidirectional=bidirectional, layers=layers,
                                          context=4, sample_rate=8000)
    report = convert_deepspeech_pytorch(ckpt, tmp_path / "model.pt")
    assert report["format"] == "deepspeech.pytorch V3 (Lightning)"
    cfg = read_config(tmp_path / "model.pt")
    # Its feature settings: n_fft = sample_rate x window_size, hop = sample_rate x window_stride.
    assert (cfg.audio.sample_rate, cfg.audio.n_fft, cfg.audio.hop_length, cfg.audio.window) == (8000, 160, 80,
                                                                                                  "hamming")
    assert cfg.text.blank == "first" and cfg.model.conv_activation == "hardtanh"
    assert (cfg.model.rnn_type, cfg.model.rnn_layers, cfg.model.bidirectional) == (rnn_type, layers, bidirectional)
    assert_same_log_probs(tmp_path / "model.pt", reference, bins=81)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-format"])
def test_v2_pth_converts_too(tmp_path, zip_format):
    """V2 packages: labels, audio_conf and sizes at the top level; saved by torch < 1.6 in its legacy
    (non-zip) format, which is read the same careful way."""
    reference = randomize(ReferenceDeepSpeech("gru", 16, 2, True, sample_rate=16000), seed=3)
    package = {"version": "0.0.1", "hidden_size": 16, "hidden_layers": 2, "rnn_type": "gru",
               "audio_conf": {"sample_rate": 16000, "window_size": 0.02, "window_stride": 0.01, "window": "hamming",
                              "noise_dir": None, "noise_prob": 0.4, "noise_levels": (0.0, 0.5)},
               "labels": "".join(LABELS), "state_dict": reference.state_dict(), "bidirectional": True,
               "epoch": 12, "avg_loss": 41.2, "loss_results": torch.rand(12)}
    torch.save(package, tmp_path / "librispeech_pretrained_v2.pth", _use_new_zipfile_serialization=zip_format)
    report = convert_deepspeech_pytorch(tmp_path / "librispeech_pretrained_v2.pth", tmp_path / "v2.pt")
    assert report["format"] == "deepspeech.pytorch V2"
    assert_same_log_probs(tmp_path / "v2.pt", reference, bins=161)


@pytest.mark.parametrize("attribute_dict", [False, True], ids=["dict", "AttributeDict"])
def test_hyper_parameters_become_plain_values(tmp_path, attribute_dict):
    save_lightning_checkpoint(tmp_path / "m.ckpt", rnn_type="lstm", bidirectional=False, context=6,
                              attribute_dict=attribute_dict)
    ckpt = load_deepspeech_pytorch(tmp_path / "m.ckpt")
    hp = ckpt["hyper_parameters"]
    assert type(hp) is dict and hp["labels"] == LABELS
    assert hp["model_cfg"] == {"rnn_type": "torch.nn.modules.rnn.LSTM", "hidden_size": 24, "hidden_layers": 3,
                               "lookahead_context": 6}
    assert hp["spect_cfg"] == {"sample_rate": 8000, "window_size": 0.02, "window_stride": 0.01, "window": "hamming"}
    assert hp["optim_cfg"]["betas"] == [0.9, 0.999]
    info = describe(tmp_path / "m.ckpt", ckpt)
    assert (info.lookahead_context, info.config().model.lookahead_context) == (6, 5)


def test_features_are_deepspeech_pytorchs_spectrogram(tmp_path):
    """Our features with the converted config against its parser written out here: int16 audio / 32767,
    centred STFT (reflect padding) with a symmetric hamming window, |.|, log1p, (x - mean) / unbiased std."""
    from deepspeech2.audio import load_features

    save_lightning_checkpoint(tmp_path / "m.ckpt", sample_rate=8000)
    convert_deepspeech_pytorch(tmp_path / "m.ckpt", tmp_path / "m.pt")
    spec = read_config(tmp_path / "m.pt").audio.feature_spec()
    rng = np.random.default_rng(5)
    t = np.arange(8000 * 2) / 8000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.3 * t)) + 0.02 * rng.standard_normal(len(t)))
    pcm = (samples * 32767).astype(np.int16)
    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(pcm.tobytes())
    ours = load_features(tmp_path / "a.wav", spec)

    n_fft, hop = int(8000 * 0.02), int(8000 * 0.01)
    signal = np.pad(pcm.astype(np.float64) / 32767, n_fft // 2, mode="reflect")
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n_fft) / (n_fft - 1))
    frames = np.stack([signal[i: i + n_fft] * window for i in range(0, len(signal) - n_fft + 1, hop)])
    theirs = np.log1p(np.abs(np.fft.rfft(frames, axis=1))).T
    theirs = (theirs - theirs.mean()) / theirs.std(ddof=1)
    assert ours.shape == theirs.shape == (81, 201)
    np.testing.assert_allclose(ours, theirs, atol=2e-3, rtol=0)


def _evil_checkpoint(path: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)

    reference = randomize(ReferenceDeepSpeech())
    with fake_packages() as ns:
        ckpt = lightning_checkpoint(reference, ns, "lstm", 24, 3, 4, 8000, extra_hparams={"notes": Payload()})
        torch.save(ckpt, path)


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    # The payload is live: a plain unpickler runs it.
    proof = tmp_path / "proof"
    _evil_checkpoint(tmp_path / "proof.ckpt", proof)
    with fake_packages():
        torch.load(tmp_path / "proof.ckpt", weights_only=False)
    assert proof.read_text() == "ran"

    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        load_deepspeech_pytorch(tmp_path / "evil.ckpt")
    assert ds2(["convert", str(tmp_path / "evil.ckpt"), str(tmp_path / "out.pt")]) == 2
    assert not marker.exists()
    assert not (tmp_path / "out.pt").exists()


def test_a_legacy_format_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)

    reference = randomize(ReferenceDeepSpeech("gru", 16, 2, True))
    torch.save({"labels": "".join(LABELS), "x": Payload(), "state_dict": reference.state_dict()},
               tmp_path / "evil.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        load_deepspeech_pytorch(tmp_path / "evil.pth")
    assert not marker.exists()


def test_a_raw_pickle_stream_is_refused(tmp_path):
    """Not even the weights-only unpickler sees a protocol-4 pickle (STACK_GLOBAL, which names nothing
    statically): refused, nothing run."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)

    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "x": Payload()}, buffer, pickle_protocol=4)
    (tmp_path / "evil4.ckpt").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="evil4.ckpt"):
        load_deepspeech_pytorch(tmp_path / "evil4.ckpt")
    assert not marker.exists()
    with pytest.raises(ValueError, match="not a PyTorch"):  # not even a zip: a bare pickle
        (tmp_path / "bare.ckpt").write_bytes(pickle.dumps({"state_dict": {}}))
        load_deepspeech_pytorch(tmp_path / "bare.ckpt")


def test_another_architecture_names_the_mismatching_parameters(tmp_path):
    reference = randomize(ReferenceDeepSpeech())
    with fake_packages() as ns:
        saved = lightning_checkpoint(reference, ns, "lstm", 24, 3, 4, 8000)
        saved["state_dict"]["fc.0.module.1.weight"] = torch.zeros(40, 24)  # 40 classes instead of 29
        del saved["state_dict"]["rnns.2.batch_norm.module.running_var"]
        torch.save(saved, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointMismatch) as error:
        convert_deepspeech_pytorch(tmp_path / "other.ckpt", tmp_path / "other.pt")
    message = str(error.value)
    assert "other.ckpt" in message and "rnns.2.norm.running_var" in message and "fc.weight (40, 24)" in message
    assert not (tmp_path / "other.pt").exists()


def test_other_labels_and_windows_are_named(tmp_path):
    save_lightning_checkpoint(tmp_path / "l.ckpt", labels=list("_abc"))
    with pytest.raises(ValueError, match="labels '_abc'"):
        describe(tmp_path / "l.ckpt")
    save_lightning_checkpoint(tmp_path / "w.ckpt", window="blackman")
    with pytest.raises(ValueError, match="window 'blackman'"):
        describe(tmp_path / "w.ckpt")
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="not deepspeech.pytorch's DeepSpeech network"):
        describe(tmp_path / "x.ckpt")


def _wav(path: Path, seconds: float, sample_rate: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pcm = ((0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(len(t))) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(sample_rate), w.writeframes(pcm.tobytes())


def test_cli_convert_then_int8_onnx_export_and_transcribe(tmp_path, capsys):
    save_lightning_checkpoint(tmp_path / "an4_pretrained_v3.ckpt", sample_rate=16000, hidden=16, layers=2)
    assert ds2(["convert", str(tmp_path / "an4_pretrained_v3.ckpt"), str(tmp_path / "an4.pt")]) == 0
    assert "deepspeech.pytorch V3" in capsys.readouterr().out
    utterances = []
    for i, seconds in enumerate((1.0, 1.6, 2.3)):
        _wav(tmp_path / f"u{i}.wav", seconds, 16000, i)
        utterances.append(Utterance(str(tmp_path / f"u{i}.wav"), "A", seconds))
    write_manifest(tmp_path / "m.jsonl", utterances)
    assert ds2(["export", "--checkpoint", str(tmp_path / "an4.pt"), "--int8", "--out", str(tmp_path / "an4.onnx"),
                "--manifest", str(tmp_path / "m.jsonl"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "int8" in capsys.readouterr().out
    from deepspeech2.transcribe import Transcriber

    onnx = Transcriber.from_onnx(tmp_path / "an4.onnx")
    assert onnx.engine == "onnxruntime-int8" and onnx.cfg.model.fc_batchnorm and onnx.cfg.text.blank == "first"
    fp32 = Transcriber.from_checkpoint(tmp_path / "an4.pt", engine="fp32")
    assert set(onnx.transcribe(tmp_path / "u1.wav")) == set(fp32.transcribe(tmp_path / "u1.wav"))


def test_converting_a_mindspore_ckpt_does_not_mistake_it(tmp_path):
    """A .ckpt that is not a zip is not taken for deepspeech.pytorch's: is_torch_file tells them apart."""
    from deepspeech2.backends.torch.deepspeech_pytorch import is_torch_file

    save_lightning_checkpoint(tmp_path / "a.ckpt")
    shutil.copy(tmp_path / "a.ckpt", tmp_path / "b.pth")
    (tmp_path / "ms.ckpt").write_bytes(b"\x0a\x05hello")
    assert is_torch_file(tmp_path / "a.ckpt") and is_torch_file(tmp_path / "b.pth")
    assert not is_torch_file(tmp_path / "ms.ckpt")
