"""Augmentation: each effect does what it says, seeded; bad settings and noise files are named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import tiny_config
from deepspeech2.audio import FeatureSpec, spectrogram
from deepspeech2.config import AugmentConfig, ConfigError, load_config
from deepspeech2.data import augment as A
from deepspeech2.train import train

RATE = 16000


def _sine(freq: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _band_power(x: np.ndarray, low: float, high: float, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs <= high)].sum())


def test_spec_augment_masks_whole_bands_and_spans():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((161, 300)).astype(np.float32) + 3.0
    out = A.spec_augment(features, np.random.default_rng(1), freq_masks=2, freq_width=20, time_masks=3,
                         time_width=0.05)
    fill = np.float32(features.mean())
    masked_rows = (out == fill).all(axis=1)
    masked_cols = (out == fill).all(axis=0)
    # Exactly the cells of whole masked bands and spans changed, all to the fill value.
    assert np.array_equal(out != features, masked_rows[:, None] | masked_cols[None, :])
    assert 0 < masked_rows.sum() <= 2 * 20 and 0 < masked_cols.sum() <= 3 * int(0.05 * 300)
    assert not (features == fill).any()  # the input is left alone
    same = A.spec_augment(features, np.random.default_rng(1), 2, 20, 3, 0.05)
    assert np.array_equal(out, same)  # seeded


def test_speed_perturbation_changes_length_by_the_factor():
    x = _sine(440, 2.0)
    for factor in (0.9, 1.1):
        y = A.speed_perturb(x, factor, RATE)
        assert abs(len(y) - len(x) / factor) <= 2
    y = A.speed_perturb(x, 1.1, RATE)  # pitch rises with tempo: 440 Hz -> 484 Hz
    peak = np.fft.rfftfreq(len(y), 1 / RATE)[np.argmax(np.abs(np.fft.rfft(y)))]
    assert abs(peak - 484) < 3
    assert A.speed_perturb(x, 1.0, RATE) is x


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_noise_is_added_at_the_requested_snr(snr):
    rng = np.random.default_rng(3)
    x = _sine(300)
    noise = A.coloured_noise(len(x) // 3, rng, 1.0)  # shorter than the speech: tiled
    y = A.add_noise(x, noise, snr)
    added = y - x
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
    assert abs(measured - snr) < 0.05


def test_coloured_noise_slopes():
    rng = np.random.default_rng(0)
    white, brown = A.coloured_noise(RATE, rng, 0.0), A.coloured_noise(RATE, rng, 2.0)
    for noise in (white, brown):
        assert abs(np.std(noise) - 1) < 1e-3
    ratio_white = _band_power(white, 50, 500) / _band_power(white, 4000, 4450)
    ratio_brown = _band_power(brown, 50, 500) / _band_power(brown, 4000, 4450)
    assert 0.5 < ratio_white < 2 and ratio_brown > 100


def test_telephone_keeps_the_voice_band_only():
    low, mid, high = _sine(100), _sine(1000), _sine(5000)
    for tone, kept in ((low, False), (mid, True), (high, False)):
        out = A.telephone(tone, RATE)
        assert len(out) == len(tone)
        ratio = np.sum(out ** 2) / np.sum(tone ** 2)
        assert (ratio > 0.8) if kept else (ratio < 0.01)


def test_mu_law_quantises_to_256_levels_with_small_error():
    x = np.linspace(-1, 1, 10001, dtype=np.float32)
    y = A.mu_law(x)
    assert len(np.unique(y)) <= 256
    assert np.max(np.abs(y - x)) < 0.04  # coarse only near full scale
    small = x[np.abs(x) < 0.01]
    assert np.max(np.abs(A.mu_law(small) - small)) < 5e-4  # fine steps near zero


def test_synthetic_rir_decays_by_60_db_at_rt60_and_reverb_keeps_length_and_peak():
    rng = np.random.default_rng(0)
    rir = A.synthetic_rir(rng, 0.4, RATE)
    assert len(rir) == int(0.4 * RATE) and abs(np.sum(rir ** 2) - 1) < 1e-4
    head = np.sum(rir[int(0.01 * RATE): int(0.05 * RATE)] ** 2)
    tail = np.sum(rir[-int(0.04 * RATE):] ** 2)
    assert 10 * np.log10(head / tail) > 45
    x = _sine(500) * np.hanning(RATE).astype(np.float32)
    y = A.reverberate(x, rir)
    assert len(y) == len(x) and abs(np.max(np.abs(y)) - np.max(np.abs(x))) < 1e-5
    assert not np.allclose(x, y)


def test_gain_and_dc_offset():
    x = _sine(200)
    y = A.gain_and_dc(x, 6.0, 0.05)
    assert abs(np.mean(y) - 0.05) < 1e-3
    assert abs((np.max(y) - 0.05) / np.max(x) - 10 ** (6 / 20)) < 1e-3


def test_vtlp_moves_formants_with_alpha():
    features = np.zeros((161, 10), dtype=np.float32)
    features[40] = 1.0  # a "formant" at bin 40
    assert A.vtlp(features, 1.0) is features
    up, down = A.vtlp(features, 1.1), A.vtlp(features, 0.9)
    assert abs(np.argmax(up[:, 0]) - 44) <= 1 and abs(np.argmax(down[:, 0]) - 36) <= 1
    assert up.shape == features.shape


def test_vtlp_on_mel_bins_warps_in_hertz():
    # On mel bins the warp is linear in Hz too: a formant at 1,000 Hz moves to 1,100 Hz (alpha 1.1),
    # although the mel bands are not evenly spaced in Hz.
    spec = FeatureSpec(n_fft=512, n_mels=80)
    hz = spec.bin_frequencies()
    formant = int(np.argmin(np.abs(hz - 1000)))
    features = np.zeros((80, 4), dtype=np.float32)
    features[formant] = 1.0
    for alpha in (1.1, 0.9):
        warped = A.vtlp(features, alpha, hz)
        peak = float(np.sum(hz * warped[:, 0]) / np.sum(warped[:, 0]))  # centroid of the moved formant
        assert abs(peak - alpha * hz[formant]) < 0.02 * hz[formant], (alpha, peak)
    linear = np.random.default_rng(0).standard_normal((161, 4)).astype(np.float32)
    np.testing.assert_array_equal(A.vtlp(linear, 1.1, FeatureSpec().bin_frequencies()), A.vtlp(linear, 1.1))
    augmenter = A.Augmenter(AugmentConfig(vtlp_prob=1.0, vtlp_alpha=[1.1, 1.1], speed=[], gain_db=0.0,
                                          dc_offset=0.0, wave_prob=0.0), spec)
    np.testing.assert_allclose(augmenter.augment_features(features, np.random.default_rng(0)),
                               A.vtlp(features, 1.1, hz))


def test_out_of_range_settings_name_the_key_and_range():
    with pytest.raises(ConfigError, match=r"augment\.speed = \[0\.9, 3\.0\] is out of range; valid: 0\.5 to 2\.0"):
        load_config(None, ["augment.speed=[0.9, 3.0]"])
    with pytest.raises(ConfigError, match=r"augment\.noise_prob .* valid: 0\.0 to 1\.0"):
        load_config(None, ["augment.noise_prob=1.5"])
    with pytest.raises(ConfigError, match=r"augment\.noise_snr must be \[low, high\]"):
        load_config(None, ["augment.noise_snr=[20, 5]"])
    with pytest.raises(ConfigError, match=r"unknown key 'augment\.specaugment'"):
        load_config(None, ["augment.specaugment=1"])


def test_noise_folder_reports_unreadable_files(tmp_path, capsys):
    folder = tmp_path / "musan" / "noise" / "free-sound"
    folder.mkdir(parents=True)
    sf.write(folder / "hum.wav", _sine(50, 0.5), RATE)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    usable, problems = A.scan_noise_folder(tmp_path / "musan")
    assert [p.endswith("hum.wav") for p in usable] == [True]
    assert len(problems) == 1 and "broken.wav" in problems[0]
    cfg = AugmentConfig(wave_prob=1.0, noise_prob=1.0, noise_dir=str(tmp_path / "musan"))
    augmenter = A.Augmenter(cfg, FeatureSpec())
    err = capsys.readouterr().err
    assert "unreadable noise file skipped" in err and "broken.wav" in err
    assert augmenter.noise_files == usable
    (folder / "hum.wav").unlink()
    with pytest.raises(FileNotFoundError, match="no readable audio files"):
        A.Augmenter(cfg, FeatureSpec())


def test_augmenter_is_seeded_and_uses_every_noise_kind(tmp_path):
    sf.write(tmp_path / "noise.wav", A.coloured_noise(RATE, np.random.default_rng(5), 0.5) * 0.1, RATE)
    speech = tmp_path / "speech.wav"
    sf.write(speech, _sine(220, 1.5) * np.hanning(int(1.5 * RATE)).astype(np.float32), RATE)
    cfg = AugmentConfig(freq_masks=1, time_masks=1, vtlp_prob=0.5, wave_prob=1.0, speed=[0.9, 1.0, 1.1],
                        noise_prob=1.0, noise_dir=str(tmp_path), reverb_prob=0.5, telephone_prob=0.5, gain_db=6,
                        dc_offset=0.01)
    assert A.enabled(cfg) and not A.enabled(AugmentConfig())
    spec = FeatureSpec()
    cached = spectrogram(sf.read(speech, dtype="float32")[0], spec)

    def run(seed: int) -> list[np.ndarray]:
        augmenter = A.Augmenter(cfg, spec, quiet=True)
        rng = np.random.default_rng(seed)
        return [augmenter.features(str(speech), cached, rng) for _ in range(8)]

    first, again, other = run(1), run(1), run(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert {f.shape[1] for f in first + other} > {cached.shape[1]}  # speed perturbation changed lengths
    # Babble needs earlier utterances: after a few, the pool feeds it.
    augmenter = A.Augmenter(AugmentConfig(wave_prob=1.0, noise_prob=1.0), spec, quiet=True)
    rng = np.random.default_rng(0)
    for _ in range(4):
        augmenter.augment_waveform(_sine(300), rng)
    assert len(augmenter.babble) == 4
    babble = augmenter._noise(RATE, rng)
    assert babble.shape == (RATE,) and np.std(babble) > 0


def test_training_with_augmentation_and_a_time_budget(tiny_corpus, tmp_path, capsys):
    cfg = tiny_config(tiny_corpus["train"], tiny_corpus["dev"], tmp_path / "features", epochs=50,
                      max_minutes=0.05, lr_schedule="cosine")
    cfg.augment = AugmentConfig(freq_masks=2, freq_width=10, time_masks=2, vtlp_prob=0.5, wave_prob=0.5,
                                speed=[0.9, 1.0, 1.1], noise_prob=0.5, reverb_prob=0.3, telephone_prob=0.2,
                                gain_db=3.0)
    metrics = train(cfg, tmp_path / "run")
    out = capsys.readouterr().out
    assert "augmentation on: SpecAugment" in out and "train.max_minutes=0.05 reached" in out
    assert "data: the training step waited" in out
    assert metrics["completed"] and metrics["dev_wer"] is not None
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert history[-1]["global_step"] < 50 * 12  # the budget, not the epochs, ended it
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()
    # A rerun with the budget spent trains no further.
    again = train(cfg, tmp_path / "run", resume=True)
    assert "already spent" in capsys.readouterr().out
    assert again["global_step"] == history[-1]["global_step"]
    assert metrics["out_of_time"]  # what lets `ds2 run` train on when the budget is raised
    cfg.train.max_minutes = 0.1
    longer = train(cfg, tmp_path / "run", resume=True)
    assert longer["out_of_time"] and longer["global_step"] > history[-1]["global_step"]


def test_a_recipe_trains_on_when_its_time_budget_is_raised(tmp_path):
    from deepspeech2.recipes import _training_done

    done = tmp_path / "done.json"
    assert not _training_done(done, 72)
    done.write_text(json.dumps({"completed": True, "out_of_time": True, "max_minutes": 72}))
    assert _training_done(done, 72) and _training_done(done, 60)
    assert not _training_done(done, 240) and not _training_done(done, 0)  # raised, or no limit
    done.write_text(json.dumps({"completed": True, "out_of_time": False, "max_minutes": 72}))
    assert _training_done(done, 240)  # it ran all its epochs: a larger budget changes nothing
