import numpy as np
import pytest
import torch

from deepspeech2.backends.torch.model import DeepSpeech2, RNNLayer, count_parameters
from deepspeech2.config import ModelConfig, config_path, load_config


def test_official_network_has_86_6_million_parameters():
    cfg = load_config(config_path("mindspore_official")).model
    model = DeepSpeech2(cfg, 161, 29)
    assert count_parameters(model) == 86_608_096
    names = dict(model.named_parameters())
    assert names["conv.convs.0.weight"].shape == (32, 1, 41, 11)
    assert names["conv.convs.1.weight"].shape == (32, 32, 21, 11)
    assert names["rnns.0.rnn.weight_ih_l0"].shape == (4096, 1312)
    assert names["rnns.4.rnn.weight_hh_l0_reverse"].shape == (4096, 1024)
    assert names["fc.weight"].shape == (29, 1024) and "fc.bias" not in names


def small(**kw) -> ModelConfig:
    base = dict(conv_channels=[4, 4], conv_kernels=[[21, 11], [11, 11]], conv_strides=[[2, 2], [2, 1]],
                rnn_type="lstm", rnn_hidden=16, rnn_layers=2, rnn_batchnorm=True)
    base.update(kw)
    return ModelConfig(**base)


def test_output_lengths_follow_the_time_strides():
    cfg = small()
    model = DeepSpeech2(cfg, 161, 29).eval()
    out, lengths = model(torch.randn(2, 161, 101), torch.tensor([101, 60]))
    assert out.shape == (2, 51, 29)
    assert lengths.tolist() == [cfg.output_frames(101), cfg.output_frames(60)] == [51, 30]
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 51), atol=1e-5)


def test_padding_does_not_change_an_utterances_output():
    """An utterance's log-probs are the same alone and batched with a longer one."""
    torch.manual_seed(0)
    for cfg in (small(), small(rnn_type="gru", bidirectional=False), small(conv_activation="hardtanh")):
        model = DeepSpeech2(cfg, 161, 29).eval()
        # Non-trivial BatchNorm statistics, as after training.
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        short = torch.randn(161, 57)
        long = torch.randn(161, 140)
        batch = torch.zeros(2, 161, 140)
        batch[0] = long
        batch[1, :, :57] = short
        with torch.no_grad():
            alone, alone_len = model(short[None], torch.tensor([57]))
            batched, batched_len = model(batch, torch.tensor([140, 57]))
        n = int(alone_len[0])
        assert int(batched_len[1]) == n
        np.testing.assert_allclose(batched[1, :n].numpy(), alone[0, :n].numpy(), atol=1e-5)


def test_without_masking_padding_leaks_into_the_output():
    """The control for the test above: the official (unmasked) network does depend on padding."""
    torch.manual_seed(0)
    model = DeepSpeech2(small(mask_padding=False), 161, 29).eval()
    short = torch.randn(161, 57)
    batch = torch.zeros(2, 161, 140)
    batch[0] = torch.randn(161, 140)
    batch[1, :, :57] = short
    with torch.no_grad():
        alone, _ = model(short[None], torch.tensor([57]))
        batched, _ = model(batch, torch.tensor([140, 57]))
    assert np.abs(batched[1, :29].numpy() - alone[0, :29].numpy()).max() > 1e-4


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_cpu_rnn_path_equals_packed_sequences(rnn_type, bidirectional, monkeypatch):
    """The per-direction CPU path (oneDNN's LSTM on the padded batch) computes what packed
    sequences compute: outputs, input gradients and weight gradients."""
    torch.manual_seed(0)
    layer = RNNLayer(rnn_type, 12, 16, bidirectional, batchnorm=True)
    x, lengths = torch.randn(9, 4, 12), torch.tensor([9, 7, 5, 2])
    weights = torch.randn(16)
    results = []
    for packed in (True, False):
        monkeypatch.setattr(RNNLayer, "use_packed", packed)
        layer.zero_grad()
        inputs = x.clone().requires_grad_()
        out = layer(inputs, lengths)
        (out * weights).sum().backward()
        results.append((out.detach(), inputs.grad, [p.grad.clone() for p in layer.rnn.parameters()]))
    (out_packed, dx_packed, dw_packed), (out, dx, dw) = results
    assert torch.allclose(out, out_packed, atol=1e-6)
    assert out[5:, 2].abs().max() == 0  # padding frames are zero, as pad_packed_sequence leaves them
    assert torch.allclose(dx, dx_packed, atol=1e-5)
    for a, b in zip(dw, dw_packed, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
