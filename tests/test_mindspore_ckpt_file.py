"""The MindSpore .ckpt reader that needs no MindSpore (backends/mindspore/ckpt_file.py, used by
`ds2 models` and `ds2 convert` in the PyTorch-only install) against MindSpore itself: what
MindSpore writes reads the same, what the reader's writer makes MindSpore loads, and our MindSpore
backend's checkpoints convert to the .pt that `ds2 convert` makes with MindSpore."""

from __future__ import annotations

import json

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from conftest import tiny_config  # noqa: E402
from deepspeech2.backends.mindspore.ckpt_file import (  # noqa: E402
    convert_to_torch_without_mindspore,
    read_ckpt_file,
    write_ckpt_file,
)


def test_what_mindspore_writes_reads_the_same(tmp_path):
    rng = np.random.default_rng(0)
    values = {"w": rng.standard_normal((64, 3, 5)).astype(np.float32), "h": rng.standard_normal(7).astype(np.float16),
              "i": np.arange(6, dtype=np.int32).reshape(2, 3), "step": np.array([12], dtype=np.int64),
              "big": rng.standard_normal((1024, 300)).astype(np.float32)}
    params = [{"name": k, "data": ms.Tensor(v)} for k, v in values.items()]
    ms.save_checkpoint(params, str(tmp_path / "a.ckpt"), append_dict={"deepspeech2_config": json.dumps({"a": 1})})
    read = read_ckpt_file(tmp_path / "a.ckpt")
    assert read["deepspeech2_config"] == json.dumps({"a": 1})
    for name, value in values.items():
        assert read[name].dtype == value.dtype
        np.testing.assert_array_equal(read[name].reshape(value.shape), value)


def test_what_the_writer_makes_mindspore_loads(tmp_path):
    rng = np.random.default_rng(1)
    values = {"conv.conv1.weight": rng.standard_normal((32, 1, 41, 11)).astype(np.float32),
              "counter": np.array([3], dtype=np.int64), "deepspeech2_format": "deepspeech2-mindspore"}
    write_ckpt_file(tmp_path / "b.ckpt", values)
    loaded = ms.load_checkpoint(str(tmp_path / "b.ckpt"))
    np.testing.assert_array_equal(loaded["conv.conv1.weight"].asnumpy(), values["conv.conv1.weight"])
    np.testing.assert_array_equal(loaded["counter"].asnumpy(), values["counter"])
    assert loaded["deepspeech2_format"] == "deepspeech2-mindspore"


def test_our_mindspore_checkpoints_convert_as_with_mindspore(tmp_path):
    import torch

    from deepspeech2.backends.mindspore.engine import MindSporeBackend
    from deepspeech2.checkpoints import convert_checkpoint

    cfg = tiny_config()
    cfg.backend = "mindspore"
    MindSporeBackend(cfg, "cpu").save(tmp_path / "m.ckpt", {"epoch": 1})
    convert_checkpoint(tmp_path / "m.ckpt", tmp_path / "with_ms.pt")
    convert_to_torch_without_mindspore(tmp_path / "m.ckpt", tmp_path / "without_ms.pt")
    a = torch.load(tmp_path / "with_ms.pt", weights_only=True)
    b = torch.load(tmp_path / "without_ms.pt", weights_only=True)
    assert a["config"] == b["config"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)


def test_our_backend_loads_checkpoints_when_free_memory_is_short(tmp_path, monkeypatch):
    """MindSpore's loader refuses a file larger than *free* memory (page cache not counted):
    CI once failed on the official model with 24 GB of RAM, mostly cache. Our backend reads
    through its own parser, so a machine with little free memory still loads and resumes."""
    import mindspore.train.serialization as serialization

    from deepspeech2.backends.mindspore.engine import MindSporeBackend, checkpoint_metadata, read_ckpt

    cfg = tiny_config()
    cfg.backend = "mindspore"
    MindSporeBackend(cfg, "cpu").save(tmp_path / "m.ckpt", {"epoch": 3})
    monkeypatch.setattr(serialization, "_get_available_memory", lambda: 1024)
    with pytest.raises(ValueError, match="exceeds current available memory"):
        ms.load_checkpoint(str(tmp_path / "m.ckpt"))  # what the backend used to call
    assert checkpoint_metadata(tmp_path / "m.ckpt")["progress"] == {"epoch": 3}
    weights = read_ckpt(tmp_path / "m.ckpt")
    assert any(isinstance(v, np.ndarray) and v.size > 1000 for v in weights.values())
