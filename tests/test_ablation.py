"""benchmarks/ablation_english.py: each variant turns off what its name says, and the
no-real variant trains on as many utterances as the full mix, none of them real."""

from __future__ import annotations

import sys
from pathlib import Path

from deepspeech2.config import config_path, load_config
from deepspeech2.data.formats import read_any_manifest
from deepspeech2.data.manifest import Utterance, write_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ablation_english import synthetic_only, variant_overrides, write_report  # noqa: E402


def _config(variant: str):
    return load_config(config_path("english"), variant_overrides(variant))


def test_variants_turn_off_what_they_name():
    full = _config("full").augment
    assert full.freq_masks > 0 and full.time_masks > 0 and full.noise_prob > 0 and len(full.speed) > 1
    no_spec = _config("no-specaugment").augment
    assert (no_spec.freq_masks, no_spec.time_masks) == (0, 0) and no_spec.noise_prob == full.noise_prob
    assert _config("no-speed").augment.speed == [1.0] and _config("no-speed").augment.freq_masks == full.freq_masks
    assert _config("no-noise").augment.noise_prob == 0 and _config("no-noise").augment.speed == full.speed
    off = _config("no-augment").augment
    assert (off.freq_masks, off.time_masks, off.vtlp_prob, off.wave_prob, off.noise_prob, off.gain_db) == (0,) * 6
    assert _config("full-seed2").train.seed != _config("full").train.seed
    # its published figures were measured with linear bins and the global per-utterance normalisation
    english, full_cfg = load_config(config_path("english")), _config("full")
    assert not full_cfg.audio.normalize_per_bin and english.audio.normalize_per_bin
    assert (full_cfg.audio.num_bins, full_cfg.model.conv_kernels) == (161, [[41, 11], [11, 5]])
    assert english.audio.num_bins == 80


def test_no_real_keeps_the_size_and_drops_every_real_utterance(tmp_path):
    manifests = tmp_path / "manifests"

    def utts(prefix: str, n: int) -> list[Utterance]:
        return [Utterance(str(tmp_path / f"{prefix}{i}.wav"), f"{prefix} {i}", 1.0) for i in range(n)]

    real = {name: utts(name, 3) for name in ("speechocean762", "an4", "fsdd")}
    for name, items in real.items():
        write_manifest(manifests / name / "train.jsonl", items)
    synthetic = utts("synthetic", 4)
    train = write_manifest(tmp_path / "train.jsonl", [*real["speechocean762"], *real["an4"], *real["speechocean762"],
                                                      *real["an4"], *real["fsdd"], *synthetic])
    out = synthetic_only(train, manifests, tmp_path / "no-real" / "train.jsonl", seed=0)
    kept = read_any_manifest(out)
    assert len(kept) == len(read_any_manifest(train)) == 19
    assert {u.path for u in kept} == {u.path for u in synthetic}
    assert read_any_manifest(synthetic_only(train, manifests, tmp_path / "again.jsonl", seed=0)) == kept


def test_report_has_a_row_per_variant_and_a_plot(tmp_path):
    results = [{"variant": name, "train_seconds": 60.0,
                "scores": {"speechocean762-test": {"wer": 0.9, "cer": cer}, "fsdd-test": {"wer": 0.5, "cer": 0.25}}}
               for name, cer in (("full", 0.6866), ("no-real", 0.7265))]
    write_report(results, tmp_path)
    rows = (tmp_path / "ablation.csv").read_text().splitlines()
    assert rows[0].startswith("variant,train_seconds,speechocean762-test wer,speechocean762-test cer")
    assert rows[1:] == ["full,60.0,90.00,68.66,50.00,25.00", "no-real,60.0,90.00,72.65,50.00,25.00"]
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
