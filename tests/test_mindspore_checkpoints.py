"""The official network's cell tree, checkpoints written by the official code (MindSpore
2.x and 1.x parameter names), and clear reports for checkpoints that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from conftest import tiny_config  # noqa: E402
from deepspeech2.backends.base import CheckpointMismatch, create_backend  # noqa: E402
from deepspeech2.backends.mindspore.convert import normalize_mindspore_names  # noqa: E402
from deepspeech2.checkpoints import OFFICIAL_CONFIG, read_config  # noqa: E402
from deepspeech2.cli import main as ds2  # noqa: E402
from deepspeech2.config import load_config  # noqa: E402


def official_shapes() -> dict[str, tuple[int, ...]]:
    """What the official code's DeepSpeechModel saves under MindSpore 2.x."""
    shapes: dict[str, tuple[int, ...]] = {"conv.conv1.weight": (32, 1, 41, 11), "conv.conv2.weight": (32, 32, 21, 11),
                                          "fc.module.weight": (29, 1024)}
    for bn in ("bn1", "bn2"):
        for stat in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"conv.{bn}.{stat}"] = (32,)
    for i in range(5):
        for suffix in ("", "_reverse"):
            shapes[f"RNN.lstms.{i}.weight_ih_l0{suffix}"] = (4096, 32 * 41 if i == 0 else 1024)
            shapes[f"RNN.lstms.{i}.weight_hh_l0{suffix}"] = (4096, 1024)
            shapes[f"RNN.lstms.{i}.bias_ih_l0{suffix}"] = (4096,)
            shapes[f"RNN.lstms.{i}.bias_hh_l0{suffix}"] = (4096,)
    return shapes


def legacy_name(name: str) -> str:
    """MindSpore 1.x: nn.LSTM's weights in parameter tuples, index = direction (one layer per cell)."""
    for kind, legacy in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("bias_ih", "b_ih"), ("bias_hh", "b_hh")):
        for suffix, index in (("_reverse", 1), ("", 0)):
            if name.endswith(f".{kind}_l0{suffix}"):
                return name[: -len(f"{kind}_l0{suffix}")] + f"{legacy}_list.{index}"
    return name


@pytest.fixture(scope="module")
def official_backend():
    cfg = load_config(OFFICIAL_CONFIG)
    cfg.backend = "mindspore"
    return create_backend(cfg, "cpu")


@pytest.fixture(scope="module")
def official_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {name: rng.uniform(-0.1, 0.1, shape).astype(np.float32) for name, shape in official_shapes().items()}


def write_official(path, weights: dict[str, np.ndarray], rename=lambda n: n) -> None:
    """As the official ModelCheckpoint: the weights, Adam's moments and counters, no config."""
    entries = [{"name": rename(k), "data": ms.Tensor(v)} for k, v in weights.items()]
    entries += [{"name": f"moment{i}.fc.module.weight", "data": ms.Tensor(np.zeros((29, 1024), np.float32))}
                for i in (1, 2)]
    entries += [{"name": n, "data": ms.Tensor(np.array(v, np.float32))}
                for n, v in (("beta1_power", 0.9), ("beta2_power", 0.999), ("learning_rate", 3e-4))]
    entries.append({"name": "global_step", "data": ms.Tensor(np.array([1000], np.int32))})
    ms.save_checkpoint(entries, str(path))


def test_official_cell_tree(official_backend):
    shapes = {p.name: tuple(p.shape) for p in official_backend.net.get_parameters()}
    assert shapes == official_shapes()
    assert official_backend.num_parameters() == 86_608_096


@pytest.mark.parametrize("naming", ["2.x", "1.x"])
def test_official_checkpoint_loads(naming, official_backend, official_weights, tmp_path, capsys):
    path = tmp_path / "DeepSpeech-70_1000.ckpt"
    write_official(path, official_weights, legacy_name if naming == "1.x" else (lambda n: n))
    cfg = read_config(path)  # no config inside: the official one
    assert "mindspore_official.yaml" in capsys.readouterr().err
    # The official recipe's network and features (models repo, official/audio/DeepSpeech2/src/config.py),
    # written out here rather than read back from the file under test.
    m, a = cfg.model, cfg.audio
    assert cfg.backend == "mindspore"
    assert (m.conv_channels, m.conv_kernels, m.conv_strides) == ([32, 32], [[41, 11], [21, 11]], [[2, 2], [2, 1]])
    assert (m.rnn_type, m.rnn_hidden, m.rnn_layers, m.bidirectional) == ("lstm", 1024, 5, True)
    assert (a.sample_rate, a.n_fft, a.hop_length, a.window) == (16000, 320, 160, "hamming")  # 20 ms / 10 ms
    assert cfg.text.blank == "last" and (cfg.train.lr, cfg.train.batch_size, cfg.train.epochs) == (3e-4, 20, 70)
    official_backend.load_pretrained(path)  # what --pretrained does
    loaded = official_backend.network_parameters()
    for name, value in official_weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_legacy_names_map_to_directions():
    cfg = load_config(OFFICIAL_CONFIG)
    renamed = normalize_mindspore_names({"RNN.lstms.3.w_ih_list.0": 0, "RNN.lstms.3.b_hh_list.1": 1,
                                         "conv.conv1.weight": 2}, cfg)
    assert renamed == {"RNN.lstms.3.weight_ih_l0": 0, "RNN.lstms.3.bias_hh_l0_reverse": 1, "conv.conv1.weight": 2}


def test_checkpoint_of_another_network_is_refused(official_backend, tmp_path):
    cfg = tiny_config()
    cfg.backend = "mindspore"
    create_backend(cfg, "cpu").save(tmp_path / "tiny.ckpt", {})
    with pytest.raises(CheckpointMismatch) as err:
        official_backend.load_pretrained(tmp_path / "tiny.ckpt")
    message = str(err.value)
    assert "does not fit the configured network" in message
    assert "missing (40)" in message and "RNN.lstms.0.weight_ih_l0" in message  # 5 LSTM layers vs 2 GRU layers
    assert "unexpected (20)" in message and "RNN.grus.0.weight_ih_l0" in message  # and RNN.norms.0.*
    assert "mis-shaped (" in message and "conv.conv1.weight (8, 1, 21, 11) vs (32, 1, 41, 11)" in message


def test_bad_checkpoint_files_give_clear_errors(tiny_corpus, tmp_path, capsys):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    assert ds2(["eval", "--checkpoint", str(garbage), "--manifest", str(tiny_corpus["dev"])]) == 2
    assert "not a readable MindSpore checkpoint" in capsys.readouterr().err
    assert ds2(["convert", str(tmp_path / "missing.ckpt"), str(tmp_path / "x.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert ds2(["convert", str(garbage), str(tmp_path / "x.onnx")]) == 2
    assert "unknown checkpoint type '.onnx'" in capsys.readouterr().err
