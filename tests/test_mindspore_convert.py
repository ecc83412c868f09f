"""Interchange: a checkpoint converted between the backends (``ds2 convert``) gives the
same log-probabilities on the same features, both ways, for the official network and
compact ones; and a training step is the same computation in both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mindspore")

from conftest import tiny_config  # noqa: E402
from deepspeech2.backends.base import create_backend  # noqa: E402
from deepspeech2.backends.mindspore.convert import torch_from_mindspore  # noqa: E402
from deepspeech2.backends.torch.engine import TorchBackend  # noqa: E402
from deepspeech2.checkpoints import OFFICIAL_CONFIG, read_config  # noqa: E402
from deepspeech2.cli import main as ds2  # noqa: E402
from deepspeech2.config import Config, load_config  # noqa: E402
from deepspeech2.data.dataset import Batch  # noqa: E402

TOLERANCE = 1e-4


def official() -> Config:
    return load_config(OFFICIAL_CONFIG)


def compact() -> Config:
    """GRU, BatchNorm between the RNNs, padding masks, hardtanh: the project's options."""
    return tiny_config()


def unidirectional() -> Config:
    cfg = tiny_config()
    cfg.model.rnn_type, cfg.model.bidirectional, cfg.model.lookahead_context = "lstm", False, 4
    return cfg


CONFIGS = {"official": official, "compact": compact, "unidirectional": unidirectional}


def features(seed: int = 0) -> Batch:
    """Three utterances of different lengths, zero-padded as the data loader does."""
    rng = np.random.default_rng(seed)
    lengths = np.array([70, 53, 38])
    x = rng.standard_normal((3, 161, 70)).astype(np.float32)
    for row, n in zip(x, lengths, strict=True):
        row[:, n:] = 0
    return Batch(x, lengths, np.zeros((3, 1), np.int64), np.ones(3, np.int64), [""] * 3, [""] * 3)


def randomize(params: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """New values for every tensor (BatchNorm variances positive), so that nothing passes by
    being still at its initial value."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in params.items():
        if value.dtype.kind in "iu":
            out[name] = value
        elif name.endswith(("moving_variance", "running_var")):
            out[name] = rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
        else:
            scale = max(float(np.abs(value).std()), 0.05)
            out[name] = (rng.standard_normal(value.shape) * scale).astype(value.dtype)
    return out


def max_diff(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    (pa, la), (pb, lb) = a, b
    assert np.array_equal(la, lb)
    return max(float(np.abs(pa[i, :n] - pb[i, :n]).max()) for i, n in enumerate(la))


def report(name: str, diff: float) -> None:
    print(f"parity {name}: max abs difference {diff:.2e}")
    assert diff < TOLERANCE, (name, diff)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_mindspore_checkpoint_to_pytorch(config, tmp_path):
    cfg = CONFIGS[config]()
    cfg.backend = "mindspore"
    ms_backend = create_backend(cfg, "cpu")
    ms_backend._check_and_load("random", randomize(ms_backend.network_parameters(), 1))
    ms_backend.save(tmp_path / "model.ckpt", {})
    assert ds2(["convert", str(tmp_path / "model.ckpt"), str(tmp_path / "model.pt")]) == 0
    torch_cfg = read_config(tmp_path / "model.pt")
    assert torch_cfg.backend == "torch" and torch_cfg.model == cfg.model
    torch_backend = create_backend(torch_cfg, "cpu")
    torch_backend.load(tmp_path / "model.pt", training_state=False)
    batch = features()
    report(f"{config} .ckpt -> .pt", max_diff(ms_backend.log_probs(batch), torch_backend.log_probs(batch)))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_pytorch_checkpoint_to_mindspore(config, tmp_path):
    cfg = CONFIGS[config]()
    torch_backend = TorchBackend(cfg, "cpu")
    import torch

    state = {k: torch.from_numpy(v) for k, v in
             randomize({k: v.numpy() for k, v in torch_backend.model.state_dict().items()}, 2).items()}
    torch_backend.model.load_state_dict(state)
    torch_backend.save(tmp_path / "model.pt", {})
    assert ds2(["convert", str(tmp_path / "model.pt"), str(tmp_path / "model.ckpt")]) == 0
    ms_cfg = read_config(tmp_path / "model.ckpt")
    assert ms_cfg.backend == "mindspore" and ms_cfg.model == cfg.model
    ms_backend = create_backend(ms_cfg, "cpu")
    ms_backend.load(tmp_path / "model.ckpt", training_state=False)
    batch = features(3)
    report(f"{config} .pt -> .ckpt", max_diff(torch_backend.log_probs(batch), ms_backend.log_probs(batch)))
    # And back: the round trip gives the PyTorch tensors bit for bit.
    assert ds2(["convert", str(tmp_path / "model.ckpt"), str(tmp_path / "back.pt")]) == 0
    back = torch.load(tmp_path / "back.pt", weights_only=True)["model"]
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state if not k.endswith("num_batches_tracked"))


def test_training_steps_agree_with_pytorch():
    """Same initial weights (the MindSpore backend starts from the PyTorch initialisation),
    same batch at a bucket length (no extra padding), SGD: the same losses and weights.
    (Adam differs slightly in its first steps: MindSpore's, as the official recipe uses,
    adds epsilon after the bias correction.)"""
    cfg = tiny_config(optimizer="sgd", lr=2e-3)
    cfg.model.rnn_type = "lstm"
    torch_backend = TorchBackend(cfg, "cpu")
    cfg.backend = "mindspore"
    ms_backend = create_backend(cfg, "cpu")
    rng = np.random.default_rng(0)
    lengths = np.array([64, 56, 50, 45])
    x = rng.standard_normal((4, 161, 64)).astype(np.float32)
    for row, n in zip(x, lengths, strict=True):
        row[:, n:] = 0
    batch = Batch(x, lengths, rng.integers(0, 28, (4, 5)), np.array([5, 4, 3, 5]), [""] * 4, [""] * 4)
    for step in range(3):
        for backend in (torch_backend, ms_backend):
            backend.set_lr(2e-3)
        ms_loss, torch_loss = ms_backend.train_step(batch), torch_backend.train_step(batch)
        assert ms_loss == pytest.approx(torch_loss, rel=1e-5), step
    ms_state = torch_from_mindspore(ms_backend.network_parameters(), cfg)
    for name, value in torch_backend.model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_allclose(ms_state[name], value.numpy(), atol=1e-5, err_msg=name)


def test_pytorch_model_exports_to_mindir(tiny_corpus, tmp_path, capsys):
    """A model trained with PyTorch, exported to MindIR (converted on the fly)."""
    cfg = tiny_config(dev_manifest=tiny_corpus["dev"], cache_dir=tmp_path / "features")
    cfg.model.rnn_type = "lstm"  # a dynamic-shape MindIR (GRU on CPU needs fixed lengths)
    TorchBackend(cfg, "cpu").save(tmp_path / "model.pt", {})
    assert ds2(["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", "mindir",
                "--out", str(tmp_path / "model.mindir")]) == 0
    out = capsys.readouterr().out
    diff = float(out.split("max abs difference to the checkpoint's output ")[1].split()[0])
    assert diff < TOLERANCE
    from deepspeech2.backends.mindspore.export import mindir_config

    saved = mindir_config(tmp_path / "model.mindir")
    assert saved["backend"] == "mindspore" and saved["model"] == json.loads(json.dumps(cfg.to_dict()["model"]))
    assert Path(tmp_path / "model.mindir").stat().st_size > 0


# 1 x 41 x 11 inputs per output take the full im2col, 8 x 21 x 11 the time taps.
@pytest.mark.parametrize(("in_channels", "kernel", "stride"), [(1, (41, 11), (2, 3)), (8, (21, 11), (2, 1))])
@pytest.mark.allowed_skip("on a GPU MindSpore runs its own convolution kernel: there is nothing to compare")
def test_convolution_equals_mindspores_own_kernel(in_channels, kernel, stride):
    """The CPU convolution (full im2col for the first layer, time taps for the others) against
    MindSpore's own kernel, which the bench's course-setup row runs."""
    import mindspore as ms

    from deepspeech2.backends.mindspore.model import Conv2d

    if ms.get_context("device_target") != "CPU":
        pytest.skip("the unfold-and-matmul convolution is the CPU path")
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, in_channels, 45, 30)).astype(np.float32))
    ours = Conv2d(in_channels, 4, kernel, stride)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Conv2d, "native_on_cpu", True)
        native = Conv2d(in_channels, 4, kernel, stride)
    native.weight.set_data(ours.weight.data)
    assert ours.taps and not native.taps and not Conv2d.native_on_cpu
    expected = native(x).asnumpy()
    assert expected.shape == ours(x).shape
    np.testing.assert_allclose(ours(x).asnumpy(), expected, atol=1e-4)
