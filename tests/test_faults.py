"""Faults survived on purpose: damaged and hostile model files, a full disk during a
checkpoint write, a manifest full of bad rows. (Kills at random moments: test_kill_resume.py.)"""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import tiny_config
from deepspeech2.backends.torch.engine import TorchBackend, load_checkpoint_file
from deepspeech2.cli import main as ds2
from deepspeech2.config import save_config
from deepspeech2.data.dataset import Batch
from deepspeech2.data.manifest import Utterance, read_manifest, write_manifest
from deepspeech2.safe_load import ModelFileError, UnsafeModelFileError, load_torch_file


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """An untrained tiny model as a checkpoint and as an ONNX export, and a wav to transcribe."""
    out = tmp_path_factory.mktemp("model_files")
    backend = TorchBackend(tiny_config())
    backend.save(out / "model.pt", {"global_step": 0})
    rng = np.random.default_rng(0)
    example = Batch(rng.standard_normal((1, 161, 60)).astype(np.float32), np.array([60]),
                    np.ones((1, 1), np.int64), np.ones(1, np.int64), [""], [""])
    backend.export(out / "model.onnx", "onnx", example)
    sf.write(out / "speech.wav", 0.1 * np.sin(np.arange(8000) / 5).astype(np.float32), 16000)
    return {"pt": out / "model.pt", "onnx": out / "model.onnx", "wav": out / "speech.wav"}


def _damaged(source: Path, dest: Path, kind: str) -> Path:
    data = bytearray(source.read_bytes())
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "empty":
        data = bytearray()
    elif kind == "flipped":  # bytes of the pickle (a .pt) or of the model's header (an .onnx) overwritten
        # (flipped weights would load: neither format carries a checksum we could check)
        start = data.find(b"data.pkl") + 40 if source.suffix == ".pt" else 4
        for i in range(start, start + 64):
            data[i] ^= 0x5A
    else:  # "foreign": another kind of file under the name
        data = bytearray(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200))
    dest.write_bytes(bytes(data))
    return dest


def _error_of(args: list[str], capsys) -> str:
    assert ds2(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("kind", ["truncated", "empty", "flipped", "foreign"])
def test_damaged_checkpoints_and_onnx_models_give_an_error_naming_the_file(model_files, kind, tmp_path, capsys):
    wav = str(model_files["wav"])
    bad_pt = _damaged(model_files["pt"], tmp_path / f"{kind}.pt", kind)
    for args in (["transcribe", wav, "--checkpoint", str(bad_pt)],
                 ["export", "--checkpoint", str(bad_pt), "--out", str(tmp_path / "x.onnx")],
                 ["convert", str(bad_pt), str(tmp_path / "x.ckpt")]):
        err = _error_of(args, capsys)
        assert f"{bad_pt}: " in err and ("truncated" in err or "corrupted" in err or "empty" in err), err
        assert "weights_only" not in err
    with pytest.raises(ModelFileError, match=f"^{bad_pt}: "):
        load_checkpoint_file(bad_pt)
    bad_onnx = _damaged(model_files["onnx"], tmp_path / f"{kind}.onnx", kind)
    err = _error_of(["transcribe", wav, "--onnx", str(bad_onnx)], capsys)
    assert f"{bad_onnx}: " in err and ("truncated" in err or "empty" in err), err
    assert not list(tmp_path.glob("x.*"))  # nothing written from a file that could not be read


class _Payload:
    """Unpickling this opens ``path`` for writing: it creates the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _checkpoint_with_payload(model_pt: Path, dest: Path, victim: Path) -> Path:
    ckpt = torch.load(model_pt, weights_only=True)
    ckpt["progress"] = {"note": _Payload(victim)}
    torch.save(ckpt, dest)
    return dest


def test_a_pickle_payload_is_refused_without_running_it(model_files, tmp_path, capsys):
    # The payload is live: a plain unpickler creates the file.
    control = _checkpoint_with_payload(model_files["pt"], tmp_path / "control.pt", tmp_path / "created-by-control")
    torch.load(control, weights_only=False)
    assert (tmp_path / "created-by-control").exists()

    victim = tmp_path / "created-by-payload"
    evil = _checkpoint_with_payload(model_files["pt"], tmp_path / "evil.pt", victim)
    for args in (["transcribe", str(model_files["wav"]), "--checkpoint", str(evil)],
                 ["eval", "--checkpoint", str(evil), "--manifest", str(tmp_path / "any.jsonl")],
                 ["convert", str(evil), str(tmp_path / "x.ckpt")]):
        err = _error_of(args, capsys)
        assert f"{evil}: refused" in err and "call io.open" in err and "can do anything" in err, err
        assert "weights_only" not in err and "trusted source" not in err
    with pytest.raises(UnsafeModelFileError):
        load_torch_file(evil)
    # As a deepspeech.pytorch .ckpt too (a zip from torch.save under another suffix).
    assert ds2(["convert", str(evil.rename(tmp_path / "evil.ckpt")), str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "evil.ckpt: refused" in err and "weights_only" not in err, err
    assert not victim.exists()


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tiny_corpus, tmp_path, capsys, monkeypatch):
    cfg = tiny_config(tiny_corpus["train"], "", tmp_path / "features", epochs=1, checkpoint_every=2)
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) < 3:
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf)
        Path(f).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])  # what fitted
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    assert ds2(["train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "DeepSpeech-1_6.pt: could not write the checkpoint: No space left on device" in err, err
    assert "last.pt (the checkpoint before) is intact" in err and f"ds2 train --resume {run}" in err
    assert load_checkpoint_file(run / "last.pt")["progress"]["global_step"] == 4
    assert sorted(p.name for p in run.glob("*.pt")) == ["DeepSpeech-1_2.pt", "DeepSpeech-1_4.pt", "last.pt"]
    assert not list(run.glob(".*tmp*"))  # the half-written file is gone

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    assert ds2(["train", "--resume", str(run)]) == 0
    assert load_checkpoint_file(run / "last.pt")["progress"]["global_step"] == 12


def test_a_thousand_bad_rows_are_skipped_and_each_one_reported(tiny_corpus, tmp_path):
    """(A line that is not a manifest row at all, torn JSON, stops with an error naming the
    file and line instead: the file is broken, not one utterance.)"""
    good = read_manifest(tiny_corpus["train"])[:24]
    sf.write(tmp_path / "silence.wav", np.zeros(0, np.float32), 16000)
    kinds = [lambda i: Utterance(str(tmp_path / f"missing-{i}.wav"), "ZERO", 0.5),
             lambda i: Utterance(str(tmp_path / "silence.wav"), "ONE", 0.5),
             lambda i: Utterance(good[i % 24].path, "", good[i % 24].duration),
             lambda i: Utterance(good[i % 24].path, f"ZERO @ {i}", good[i % 24].duration),
             lambda i: Utterance(good[i % 24].path, "ZERO " * 40, good[i % 24].duration),
             lambda i: Utterance(good[i % 24].path, "ONE", 99.0)]
    rows, bad_lines, spare = [], [], list(good)
    for i in range(1000):  # the good rows spread among the bad ones
        rows.append(kinds[i % len(kinds)](i))
        bad_lines.append(len(rows))
        if i % 42 == 0 and spare:
            rows.append(spare.pop())
    rows += spare
    manifest = write_manifest(tmp_path / "train.jsonl", rows)

    cfg = tiny_config(manifest, "", tmp_path / "features", epochs=1)
    assert ds2(["train", "--config", str(_saved(cfg, tmp_path)), "--out", str(tmp_path / "run")]) == 0
    report = [json.loads(line) for line in open(tmp_path / "run" / "skipped.jsonl")]
    assert sorted(r["line"] for r in report) == bad_lines
    reasons = " ".join(r["reason"] for r in report)
    for words in ("not found", "empty", "empty transcript", "'@'", "too short for its transcript",
                  "longer than data.max_duration"):
        assert words in reasons, words
    progress = load_checkpoint_file(tmp_path / "run" / "last.pt")["progress"]
    assert progress["global_step"] == 3  # the 24 good utterances, batches of 8


def _saved(cfg, tmp_path: Path) -> Path:
    save_config(cfg, tmp_path / "cfg.yaml")
    return tmp_path / "cfg.yaml"


def test_pickle_module_is_not_used_to_read_checkpoints():
    """The loaders go through torch.load(weights_only=True): no plain unpickler anywhere in the package."""
    src = Path(__file__).resolve().parents[1] / "src" / "deepspeech2"
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if "pickle.load" in p.read_text() or "weights_only=False" in p.read_text()]
    assert offenders == []


def _protobuf_field(number: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_a_truncated_mindspore_checkpoint_gives_an_error_naming_the_file(tmp_path, capsys):
    """Read without MindSpore (backends/mindspore/ckpt_file.py), as ds2 convert does in .venv."""
    from deepspeech2.backends.mindspore.ckpt_file import read_ckpt_file

    weights = np.arange(8 * 21 * 11, dtype=np.float32).reshape(8, 1, 21, 11)
    dims = b"".join(bytes([d]) for d in weights.shape)  # each < 128: one varint byte
    tensor = _protobuf_field(1, dims) + _protobuf_field(2, b"Float32") + _protobuf_field(3, weights.tobytes())
    value = _protobuf_field(1, b"conv.conv1.weight") + _protobuf_field(2, tensor)
    intact = tmp_path / "intact.ckpt"
    intact.write_bytes(_protobuf_field(1, value))
    np.testing.assert_array_equal(read_ckpt_file(intact)["conv.conv1.weight"], weights)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(intact.read_bytes()[: intact.stat().st_size // 2])
    err = _error_of(["convert", str(cut), str(tmp_path / "x.pt")], capsys)
    assert f"{cut}: not a readable MindSpore checkpoint" in err, err
    assert not (tmp_path / "x.pt").exists()
