"""The model registry against files served on 127.0.0.1 in the releases' layout: download on first
use, resume after a cut, SHA-256 checked before use (a mismatch deletes the file and names both
sums), a rerun downloads nothing, a full disk stops at once; unknown names, unusable cache
folders; `ds2 transcribe --model`, `ds2 models import`, and the official MindSpore checkpoint read
without MindSpore through `ds2 eval --model mindspore-official`."""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from deepspeech2 import registry
from deepspeech2.audio import load_features
from deepspeech2.checkpoints import read_config
from deepspeech2.cli import main as ds2
from deepspeech2.data import download as download_module
from deepspeech2.data.download import ChecksumError, DownloadError
from deepspeech2.data.manifest import Utterance, write_manifest
from deepspeech2.registry import RegistryError, resolve_model, sha256_file
from deepspeech_pytorch_fixtures import LABELS, reference_log_probs, save_lightning_checkpoint
from test_librispeech import RangeServer

NAME = "deepspeech-pytorch-an4"
RELEASE_PATH = "SeanNaren/deepspeech.pytorch/releases/download/V3.0/an4_pretrained_v3.ckpt"


@pytest.fixture()
def release(tmp_path, monkeypatch):
    """A mirror of github.com serving an AN4-named checkpoint at the release's path, a fresh model
    cache, and the download retries without waiting."""
    served = tmp_path / "served"
    (served / RELEASE_PATH).parent.mkdir(parents=True)
    reference = save_lightning_checkpoint(served / RELEASE_PATH, sample_rate=16000, hidden=16, layers=2, seed=0)
    server = RangeServer(served)
    monkeypatch.setenv("DS2_MODELS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DS2_MODELS_BASE_URL", raising=False)
    monkeypatch.setattr(download_module.time, "sleep", lambda s: None)
    yield {"server": server, "file": served / RELEASE_PATH, "cache": tmp_path / "cache", "reference": reference}
    server.close()


def with_sha256(monkeypatch, name: str, sha256: str) -> None:
    monkeypatch.setitem(registry.MODELS, name, dataclasses.replace(registry.MODELS[name], sha256=sha256))


def test_the_mirror_url_keeps_the_release_path():
    entry = registry.MODELS[NAME]
    assert entry.url == "https://github.com/" + RELEASE_PATH
    assert entry.download_url("http://127.0.0.1:8000/mirror/") == "http://127.0.0.1:8000/mirror/" + RELEASE_PATH
    assert registry.MODELS["mindspore-official"].download_url("http://x/") is None


def test_a_cut_download_resumes_is_verified_and_a_rerun_downloads_nothing(release, monkeypatch, capsys):
    server, size = release["server"], release["file"].stat().st_size
    with_sha256(monkeypatch, NAME, sha256_file(release["file"]))
    server.cut[RELEASE_PATH] = size // 3
    model = resolve_model(NAME, base_url=server.url)
    assert model == release["cache"] / NAME / "model.pt"
    assert server.log == [(RELEASE_PATH, None), (RELEASE_PATH, f"bytes={size // 3}-")]
    assert server.sent == size  # nothing fetched twice
    err = capsys.readouterr().err
    assert "downloading" in err and "converting" in err
    info = json.loads((model.parent / "model.json").read_text())
    assert info["sha256"] == sha256_file(release["file"]) and info["name"] == NAME

    assert resolve_model(NAME, base_url=server.url) == model
    assert len(server.log) == 2  # the rerun asked the server for nothing
    assert ds2(["models", "list"]) == 0
    assert f"[cached: {model}]" in capsys.readouterr().out


def test_a_wrong_checksum_deletes_the_file_and_names_both_sums(release, monkeypatch, capsys):
    actual = sha256_file(release["file"])
    with_sha256(monkeypatch, NAME, "ab" * 32)
    with pytest.raises(ChecksumError) as error:
        resolve_model(NAME, base_url=release["server"].url)
    assert actual in str(error.value) and "ab" * 32 in str(error.value)
    folder = release["cache"] / NAME
    assert not (folder / "an4_pretrained_v3.ckpt").exists() and not (folder / "model.pt").exists()
    assert ds2(["models", "download", NAME, "--base-url", release["server"].url]) == 2
    err = capsys.readouterr().err
    assert actual in err and "ab" * 32 in err


def test_without_a_recorded_checksum_the_files_own_is_printed(release, capsys):
    resolve_model(NAME, base_url=release["server"].url)
    assert f"this file's is {sha256_file(release['file'])}" in capsys.readouterr().err


def test_a_full_disk_stops_at_once_and_the_next_run_resumes(release, monkeypatch):
    server, size = release["server"], release["file"].stat().st_size
    real_open = open

    class FillingDisk:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, block):
            if self.written + len(block) > size // 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(block)
            return self.f.write(block)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

    def full_disk_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FillingDisk(f) if str(path).endswith(".part") else f

    monkeypatch.setattr(download_module, "open", full_disk_open, raising=False)
    with pytest.raises(DownloadError, match="disk is full"):
        resolve_model(NAME, base_url=server.url)
    folder = release["cache"] / NAME
    assert len(server.log) == 1  # no retries against a full disk
    assert not (folder / "an4_pretrained_v3.ckpt").exists() and not (folder / "model.pt").exists()
    kept = (folder / "an4_pretrained_v3.ckpt.part").stat().st_size
    assert 0 < kept <= size // 2

    monkeypatch.undo()
    monkeypatch.setenv("DS2_MODELS_DIR", str(release["cache"]))
    assert resolve_model(NAME, base_url=server.url).is_file()
    assert server.log[-1] == (RELEASE_PATH, f"bytes={kept}-")


def test_unknown_names_list_the_known_ones(release, tmp_path, capsys):
    with pytest.raises(RegistryError, match="deepspeech-pytorch-librispeech.*mindspore-official"):
        resolve_model("deepspeech-pytorch-klingon")
    _wav(tmp_path / "a.wav", 1.0)
    assert ds2(["transcribe", "--model", "nope", str(tmp_path / "a.wav")]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and NAME in err


def test_an_unwritable_cache_folder_is_named(release, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RegistryError, match="a-file/models.* is not writable"):
        resolve_model(NAME, cache_dir=tmp_path / "a-file" / "models")


def test_no_url_says_how_to_import(release):
    with pytest.raises(RegistryError, match="ds2 models import FILE --name mindspore-official"):
        resolve_model("mindspore-official")


def _wav(path: Path, seconds: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    pcm = ((0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(len(t))) * 32767)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(pcm.astype(np.int16).tobytes())


def _greedy(log_probs: np.ndarray) -> str:
    best = log_probs.argmax(-1)
    return "".join(LABELS[k] for i, k in enumerate(best) if k != 0 and (i == 0 or k != best[i - 1]))


def test_transcribe_with_a_model_name_end_to_end(release, tmp_path, monkeypatch, capsys):
    """`ds2 transcribe --model NAME` on a fresh cache: downloads from the mirror, converts, and prints
    what the original network's greedy decoding of the same features says."""
    monkeypatch.setenv("DS2_MODELS_BASE_URL", release["server"].url)
    _wav(tmp_path / "a.wav", 2.5, seed=2)
    assert ds2(["transcribe", "--model", NAME, "--engine", "fp32", str(tmp_path / "a.wav")]) == 0
    out, err = capsys.readouterr()
    assert "downloading" in err and release["server"].url in err
    spec = read_config(release["cache"] / NAME / "model.pt").audio.feature_spec()
    features = load_features(tmp_path / "a.wav", spec)[None]
    log_probs, lengths = reference_log_probs(release["reference"], features, np.array([features.shape[2]]))
    assert out.strip() == _greedy(log_probs[0, : int(lengths[0])].numpy())
    assert len(set(out.strip())) >= 3  # a transcript that says something (the random network's letters)
    assert ds2(["transcribe", "--model", NAME, "--json", str(tmp_path / "a.wav")]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"path", "text", "duration", "words"}
    assert len(release["server"].log) == 1


def test_import_a_file_you_have(release, tmp_path, capsys):
    local = tmp_path / "an4_pretrained_v3.ckpt"
    local.write_bytes(release["file"].read_bytes())
    assert ds2(["models", "import", str(local)]) == 0  # the file name says which model it is
    assert str(release["cache"] / NAME / "model.pt") in capsys.readouterr().out
    assert resolve_model(NAME) == release["cache"] / NAME / "model.pt"
    assert release["server"].log == []
    (tmp_path / "mystery.ckpt").write_bytes(b"x")
    with pytest.raises(RegistryError, match="--name"):
        registry.import_model(tmp_path / "mystery.ckpt")


def test_a_deepspeech_pytorch_path_is_converted_once(release, tmp_path):
    first = resolve_model(release["file"])
    assert first.parent == release["cache"] / "converted" and first.suffix == ".pt"
    mtime = first.stat().st_mtime_ns
    assert resolve_model(release["file"]) == first and first.stat().st_mtime_ns == mtime
    assert resolve_model(first) == first  # our own checkpoints pass through


def test_mindspore_official_without_mindspore(release, tmp_path, capsys):
    """The official checkpoint's format (MindSpore protobuf, official parameter names) read by hand:
    `ds2 models import … --name mindspore-official`, then `ds2 eval --model mindspore-official`
    through the PyTorch backend, with the log-probabilities of the network it was made from."""
    from conftest import tiny_config
    from deepspeech2.backends.base import create_backend
    from deepspeech2.backends.mindspore.ckpt_file import read_ckpt_file, write_ckpt_file
    from deepspeech2.backends.mindspore.convert import mindspore_from_torch, torch_to_mindspore_names
    from deepspeech2.data.dataset import Batch

    cfg = tiny_config()
    cfg.text.blank, cfg.model.conv_activation, cfg.model.mask_padding = "last", "tanh", False
    cfg.model.rnn_type, cfg.model.rnn_batchnorm = "lstm", False  # the official network's kind
    original = create_backend(cfg, "cpu")
    state = {k: v.numpy() for k, v in original.model.state_dict().items()}
    params = mindspore_from_torch(state, cfg)
    params["moment1.fc.module.weight"] = np.zeros_like(params["fc.module.weight"])  # Adam state, ignored
    params["deepspeech2_config"] = json.dumps(cfg.to_dict())
    write_ckpt_file(tmp_path / "DeepSpeech.ckpt", params)
    back = read_ckpt_file(tmp_path / "DeepSpeech.ckpt")
    assert back.keys() == params.keys() and back["deepspeech2_config"] == params["deepspeech2_config"]
    for name in torch_to_mindspore_names(cfg).values():
        np.testing.assert_array_equal(back[name], params[name])
        assert back[name].dtype == np.float32

    assert ds2(["models", "import", str(tmp_path / "DeepSpeech.ckpt"), "--name", "mindspore-official"]) == 0
    model = release["cache"] / "mindspore-official" / "model.pt"
    assert str(model) in capsys.readouterr().out
    converted = create_backend(read_config(model), "cpu")
    converted.load(model, training_state=False)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((2, cfg.audio.num_bins, 40)).astype(np.float32)
    batch = Batch(features, np.array([40, 40]), np.zeros((2, 1), np.int64), np.zeros(2, np.int64), ["", ""], ["", ""])
    np.testing.assert_allclose(converted.log_probs(batch)[0], original.log_probs(batch)[0], atol=1e-5)

    for i in range(2):
        _wav(tmp_path / f"u{i}.wav", 1.0 + i, seed=i)
    write_manifest(tmp_path / "test.jsonl", [Utterance(str(tmp_path / f"u{i}.wav"), "A B", 1.0 + i) for i in range(2)])
    assert ds2(["eval", "--model", "mindspore-official", "--manifest", str(tmp_path / "test.jsonl"), "--out",
                str(tmp_path / "eval"), "--quiet", "--cache-dir", str(tmp_path / "features")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["num_utterances"] == 2 and 0 <= results["cer"]


def test_the_official_ckpt_reader_refuses_other_files(tmp_path):
    from deepspeech2.backends.mindspore.ckpt_file import CkptFormatError, read_ckpt_file

    torch.save({"a": 1}, tmp_path / "torch.ckpt")
    with pytest.raises(CkptFormatError, match="zip"):
        read_ckpt_file(tmp_path / "torch.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"\x0a\xff\xff\xff")
    with pytest.raises(CkptFormatError, match="junk.ckpt"):
        read_ckpt_file(tmp_path / "junk.ckpt")


def test_an_official_ckpt_without_a_config_gets_the_official_settings(release, tmp_path, monkeypatch):
    """The official DeepSpeech.ckpt holds no config and MindSpore 1.x parameter names (w_ih_list.N…):
    converted with configs/mindspore_official.yaml (here a same-shaped tiny stand-in for that file, so
    that the test stays small), its Adam state left out."""
    import deepspeech2.config
    from conftest import tiny_config
    from deepspeech2.backends.base import create_backend
    from deepspeech2.backends.mindspore.ckpt_file import write_ckpt_file
    from deepspeech2.backends.mindspore.convert import mindspore_from_torch
    from deepspeech2.config import save_config

    cfg = tiny_config()
    cfg.name, cfg.text.blank, cfg.model.conv_activation, cfg.model.mask_padding = "official", "last", "tanh", False
    cfg.model.rnn_type, cfg.model.rnn_batchnorm, cfg.audio.n_fft = "lstm", False, 320
    save_config(cfg, tmp_path / "official.yaml")
    monkeypatch.setattr(deepspeech2.config, "OFFICIAL_CONFIG", tmp_path / "official.yaml")
    original = create_backend(cfg, "cpu")
    params = mindspore_from_torch({k: v.numpy() for k, v in original.model.state_dict().items()}, cfg)
    legacy = {}
    for name, value in params.items():  # MindSpore 1.x: RNN.lstms.0.w_ih_list.1 for the reverse direction
        for kind, short in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("bias_ih", "b_ih"), ("bias_hh", "b_hh")):
            for suffix, index in (("_l0_reverse", 1), ("_l0", 0)):
                if name.endswith(f".{kind}{suffix}"):
                    name = name[: -len(f"{kind}{suffix}")] + f"{short}_list.{index}"
        legacy[name] = value
    assert any("w_ih_list.1" in k for k in legacy)
    legacy["beta1_power"] = np.array([0.9], dtype=np.float32)
    write_ckpt_file(tmp_path / "DeepSpeech.ckpt", legacy)
    name, model = registry.import_model(tmp_path / "DeepSpeech.ckpt", "mindspore-official")
    if importlib.util.find_spec("mindspore") is None:  # a MindSpore .ckpt by path: converted without it too
        by_path = resolve_model(tmp_path / "DeepSpeech.ckpt")
        assert by_path.parent.name == "converted" and by_path.read_bytes() != b""
    converted_cfg = read_config(model)
    assert converted_cfg.name == "official" and converted_cfg.text.blank == "last"
    assert converted_cfg.audio.n_fft == 320 and converted_cfg.audio.window == "hamming"
    converted = create_backend(converted_cfg, "cpu")
    converted.load(model, training_state=False)
    for key, value in original.model.state_dict().items():
        torch.testing.assert_close(converted.model.state_dict()[key], value)
