"""The training loop's parts against hand-computed values: learning-rate schedules, the
length-bucketed batch order with SortaGrad, early stopping, and the fp16 loss scaler."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import tiny_config
from deepspeech2 import train as train_module
from deepspeech2.backends.torch.engine import TorchBackend, load_checkpoint_file
from deepspeech2.config import TrainConfig
from deepspeech2.data.dataset import Batch, BucketBatchSampler, padding_fraction
from deepspeech2.data.manifest import read_manifest, write_manifest
from deepspeech2.train import learning_rate, train


def _lrs(t: TrainConfig, steps_per_epoch: int) -> list[float]:
    return [learning_rate(t, e, s, steps_per_epoch) for e in range(t.epochs) for s in range(steps_per_epoch)]


def test_official_schedule_is_constant_for_half_the_epochs_then_divided_per_epoch():
    t = TrainConfig(epochs=5, lr=1e-3, lr_schedule="official", lr_decay=1.1)
    # epochs // 2 = 2 constant epochs, then 1e-3 / 1.1, / 1.21, / 1.331; two steps per epoch
    expected = [1e-3, 1e-3, 1e-3, 1e-3, 9.0909091e-4, 9.0909091e-4, 8.2644628e-4, 8.2644628e-4,
                7.5131480e-4, 7.5131480e-4]
    assert _lrs(t, 2) == pytest.approx(expected, rel=1e-7)


def test_cosine_schedule_decays_to_min_lr_over_all_steps():
    t = TrainConfig(epochs=2, lr=1e-3, min_lr=1e-4, lr_schedule="cosine")
    # 1e-4 + 9e-4 * (1 + cos(pi * k / 10)) / 2 for global steps k = 0..9
    expected = [1e-3, 9.779754e-4, 9.140576e-4, 8.145034e-4, 6.890576e-4, 5.5e-4, 4.109424e-4, 2.854966e-4,
                1.859424e-4, 1.220246e-4]
    assert _lrs(t, 5) == pytest.approx(expected, abs=1e-10)
    # With a time budget ahead of the steps, the decay follows the time spent.
    assert learning_rate(t, 0, 0, 5, time_fraction=0.5) == pytest.approx(5.5e-4)


def test_warmup_ramps_linearly_then_hands_over_to_the_schedule():
    t = TrainConfig(epochs=2, lr=2e-3, lr_schedule="constant", warmup_steps=4)
    assert _lrs(t, 3) == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3])
    t = TrainConfig(epochs=2, lr=1e-3, min_lr=1e-4, lr_schedule="cosine", warmup_steps=2)
    assert _lrs(t, 5)[:3] == pytest.approx([0.5e-3, 9.779754e-4, 9.140576e-4], abs=1e-10)


def test_buckets_hold_similar_lengths_and_sortagrad_runs_the_first_epoch_shortest_first():
    frames = [50, 30, 90, 10, 70, 20, 60]
    sampler = BucketBatchSampler(frames, batch_size=2, seed=3, sortagrad=True)
    # sorted: 10 (3), 20 (5), 30 (1), 50 (0), 60 (6), 70 (4), 90 (2)
    assert sampler.batches == [[3, 5], [1, 0], [6, 4], [2]]
    assert sampler.epoch(0) == sampler.batches  # SortaGrad: shortest first
    later = [sampler.epoch(e) for e in range(1, 6)]
    assert all(sorted(map(tuple, order)) == sorted(map(tuple, sampler.batches)) for order in later)
    assert any(order != sampler.batches for order in later)  # shuffled, as batches
    assert sampler.epoch(2) == BucketBatchSampler(frames, 2, seed=3).epoch(2)  # the seed decides: resumable
    # Without SortaGrad the first epoch is shuffled too.
    assert any(BucketBatchSampler(frames, 2, seed=s, sortagrad=False).epoch(0) != sampler.batches for s in range(5))
    # Data parallel: a batch smaller than the process count is dropped.
    assert BucketBatchSampler(frames, 2, min_size=2).batches == [[3, 5], [1, 0], [6, 4]]
    # Padding: [10, 20] pads to 2 x 20, [30, 50] to 2 x 50, [60, 70] to 2 x 70, [90] to 90: 1 - 330 / 370.
    assert padding_fraction(sampler.batches, frames) == pytest.approx(1 - 330 / 370)


def test_early_stopping_after_epochs_without_a_better_dev_wer(tiny_corpus, tmp_path, capsys, monkeypatch):
    train_set = write_manifest(tmp_path / "train.jsonl", read_manifest(tiny_corpus["train"])[:16])
    dev_set = write_manifest(tmp_path / "dev.jsonl", read_manifest(tiny_corpus["dev"])[:8])
    # The dev WER of each epoch, as the scorer will report it: best at epoch 2; epoch 3 worse,
    # epoch 4 only equal, so with early_stopping=2 the run stops after epoch 4 (of 10).
    wers = iter([0.9, 0.5, 0.6, 0.5, 0.2, 0.1])
    monkeypatch.setattr(train_module, "score", lambda refs, hyps: (SimpleNamespace(wer=next(wers), cer=0.0), []))
    cfg = tiny_config(train_set, dev_set, tmp_path / "features", epochs=10, early_stopping=2)
    metrics = train(cfg, tmp_path / "run")
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [(m["epoch"], m["dev_wer"]) for m in history] == [(1, 0.9), (2, 0.5), (3, 0.6), (4, 0.5)]
    assert metrics["completed"] is True
    assert "early stopping: dev WER has not improved for 2 epochs" in capsys.readouterr().out
    assert load_checkpoint_file(tmp_path / "run" / "best.pt")["progress"]["epoch"] == 2
    progress = load_checkpoint_file(tmp_path / "run" / "last.pt")["progress"]
    assert progress["epochs_since_best"] == 2 and progress["best_wer"] == 0.5


def _batch() -> Batch:
    rng = np.random.default_rng(0)
    return Batch(rng.standard_normal((2, 161, 80)).astype(np.float32), np.array([80, 70]),
                 np.array([[1, 2, 3], [4, 5, 0]]), np.array([3, 2]), ["", ""], ["", ""])


def test_fp16_loss_scaler_skips_an_overflowing_step_and_halves_the_scale_on_cpu():
    backend = TorchBackend(tiny_config(precision="fp16"), device="cpu")
    assert backend.scaler.is_enabled()
    backend.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # forces fp16 gradients to overflow
    params = {n: p.detach().clone() for n, p in backend.model.named_parameters()}
    assert backend.train_step(_batch()) is None  # skipped
    assert backend.scaler.get_scale() == 2.0**39
    assert all(torch.equal(params[n], p) for n, p in backend.model.named_parameters())  # no update
    losses = [backend.train_step(_batch()) for _ in range(40)]
    applied = [loss for loss in losses if loss is not None]
    assert applied and all(np.isfinite(loss) and loss > 0 for loss in applied)
    assert backend.scaler.get_scale() == 2.0 ** (39 - losses.count(None))  # halved once per skipped step
    assert not all(torch.equal(params[n], p) for n, p in backend.model.named_parameters())
    # fp32 has no scaler: every finite step is applied.
    assert not TorchBackend(tiny_config(), device="cpu").scaler.is_enabled()
