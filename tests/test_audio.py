import numpy as np
import pytest
import soundfile as sf

from deepspeech2.audio import AudioError, FeatureSpec, load_audio, mel_filterbank, spectrogram


def reference_spectrogram(x: np.ndarray, n_fft: int, hop: int, window: str, normalize: bool) -> np.ndarray:
    """Straight from the definitions, in float64: reflect padding by n_fft/2 (librosa's
    center=True), a symmetric window, an explicit DFT, log(1 + |X|)."""
    x = np.asarray(x, dtype=np.float64)
    pad = n_fft // 2
    left = x[1: pad + 1][::-1]
    right = x[-pad - 1: -1][::-1]
    padded = np.concatenate([left, x, right])
    n = np.arange(n_fft)
    a = 0.54 if window == "hamming" else 0.5
    win = a - (1 - a) * np.cos(2 * np.pi * n / (n_fft - 1))
    k = np.arange(n_fft // 2 + 1)[:, None]
    basis = np.exp(-2j * np.pi * k * n[None, :] / n_fft)
    frames = [padded[s: s + n_fft] * win for s in range(0, len(padded) - n_fft + 1, hop)]
    spec = np.log1p(np.abs(basis @ np.stack(frames, axis=1)))
    if normalize:
        spec = (spec - spec.mean()) / spec.std()
    return spec


@pytest.mark.parametrize("window", ["hamming", "hann"])
@pytest.mark.parametrize("normalize", [True, False])
def test_features_match_independent_reference(window, normalize):
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 1.37) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    spec = FeatureSpec(window=window, normalize=normalize)
    ours = spectrogram(x, spec)
    ref = reference_spectrogram(x, 320, 160, window, normalize)
    assert ours.shape == ref.shape == (161, 1 + len(x) // 160)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=1e-4)


def test_normalised_features_have_zero_mean_unit_variance():
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    feats = spectrogram(x)
    assert abs(feats.mean()) < 1e-4 and abs(feats.std() - 1) < 1e-3


@pytest.mark.parametrize("per_bin", [False, True])
def test_normalisation_is_bit_for_bit_the_published_formula(per_bin):
    # The quickstart's deterministic training amplifies a last-bit change in the features into
    # a point or more of test WER, so the published figures hold only for these exact sums:
    # (x - mean) / std of the uncentred x; per-bin: centre each bin, then divide by the std.
    # Loud and quiet stretches, as in speech: on such a signal the two ways to take the std
    # (of x, or of x minus its mean) differ in the last bit.
    rng = np.random.default_rng(13)
    x = (np.repeat(rng.uniform(0, 1, 20) ** 3, 1600) * rng.standard_normal(32000) * 0.3).astype(np.float32)
    spec = FeatureSpec(normalize_per_bin=per_bin)
    # (bins, frames) as the transposed view of a frames-major array, the memory order the
    # features are computed in, so that numpy's float32 sums run in the same order here.
    raw = np.ascontiguousarray(spectrogram(x, FeatureSpec(normalize=False)).T).T
    if per_bin:
        centred = raw - raw.mean(axis=1, keepdims=True)
        expected = centred / centred.std()
    else:
        expected = (raw - raw.mean()) / raw.std()
    np.testing.assert_array_equal(spectrogram(x, spec), expected)


def test_per_bin_normalisation_removes_a_fixed_channel_colouring():
    # A fixed filter (the microphone, the phone line, the speaker's average spectrum) multiplies
    # |X| per bin, which after the log is roughly a per-bin offset: per-bin mean normalisation
    # takes it away, the global normalisation does not.
    rng = np.random.default_rng(2)
    x = rng.standard_normal(16000).astype(np.float32)
    coloured = np.convolve(x, [1.0, 0.9], mode="same").astype(np.float32)  # a strong low-pass tilt
    per_bin, global_ = FeatureSpec(normalize_per_bin=True), FeatureSpec()
    a, b = spectrogram(x, per_bin), spectrogram(coloured, per_bin)
    np.testing.assert_allclose(a.mean(axis=1), 0, atol=1e-4)
    assert abs(a.std() - 1) < 1e-3
    changed_global = np.abs(spectrogram(x, global_) - spectrogram(coloured, global_)).mean()
    changed_per_bin = np.abs(a - b).mean()
    assert changed_per_bin < 0.5 * changed_global


def test_load_mixes_to_mono_and_resamples(tmp_path):
    sr = 8000
    t = np.arange(sr) / sr
    left = 0.6 * np.sin(2 * np.pi * 300 * t)  # different tones and loudness in the two channels
    right = 0.2 * np.sin(2 * np.pi * 1100 * t) - 0.1
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="FLOAT")
    same_rate = load_audio(path, sr)
    assert same_rate.dtype == np.float32 and same_rate.ndim == 1
    np.testing.assert_allclose(same_rate, (left + right) / 2, atol=1e-6)  # the channels' mean
    audio = load_audio(path, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 2
    # Both tones survive resampling at half their channel's amplitude, and the offset at half.
    spectrum = np.abs(np.fft.rfft(audio)) * 2 / len(audio)
    hz = np.fft.rfftfreq(len(audio), 1 / 16000)
    for tone, amplitude in ((300, 0.3), (1100, 0.1)):
        peak = np.argmin(np.abs(hz - tone))
        assert spectrum[peak - 2: peak + 3].max() == pytest.approx(amplitude, rel=0.02), tone
    assert np.mean(audio) == pytest.approx(-0.05, abs=1e-3)


def test_flac_and_ogg_are_read(tmp_path):
    x = 0.1 * np.sin(np.linspace(0, 200, 16000))
    for ext in ("flac", "ogg"):
        sf.write(tmp_path / f"a.{ext}", x, 16000)
        assert len(load_audio(tmp_path / f"a.{ext}")) == 16000


def test_bad_audio_raises_error_naming_the_file(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(broken)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)


@pytest.mark.parametrize("per_bin", [False, True])
def test_normalisation_does_not_amplify_silence_into_noise(per_bin):
    # A silent file with dither (Asterisk's silence prompts) would otherwise come out as
    # unit-variance noise, which a model transcribes as words; speech is normalised as before.
    rng = np.random.default_rng(3)
    spec = FeatureSpec(normalize_per_bin=per_bin)
    silence = (rng.integers(-1, 2, 16000) / 32768).astype(np.float32)  # 16-bit silence, +-1 LSB dither
    assert spectrogram(silence, spec).std() < 0.2
    quiet_speech_level = (0.003 * rng.standard_normal(16000)).astype(np.float32)
    assert abs(spectrogram(quiet_speech_level, spec).std() - 1) < 1e-3


def test_log_mel_features_put_a_tone_in_its_band():
    spec = FeatureSpec(n_fft=512, n_mels=80, normalize=False)
    t = np.arange(16000) / 16000
    hz = spec.bin_frequencies()
    assert spec.num_bins == 80 and np.all(np.diff(hz) > 0)
    # HTK's mel scale, 80 bands from 0 Hz to 8 kHz: the first and last centres
    assert abs(hz[0] - 22.12) < 0.05 and abs(hz[-1] - 7733.5) < 0.5
    for tone in (250.0, 1000.0, 3000.0, 7000.0):
        features = spectrogram(np.sin(2 * np.pi * tone * t).astype(np.float32), spec)
        assert features.shape == (80, 101)
        peak = int(np.argmax(features.mean(axis=1)))
        nearest = int(np.argmin(np.abs(hz - tone)))
        assert abs(peak - nearest) <= 1, (tone, hz[peak], hz[nearest])
    # The bands sum the linear magnitudes: the same signal through both front ends.
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    linear = np.expm1(spectrogram(x, FeatureSpec(n_fft=512, normalize=False)))
    mel = np.expm1(spectrogram(x, spec))
    np.testing.assert_allclose(mel, mel_filterbank(16000, 512, 80) @ linear, rtol=1e-3, atol=1e-3)


def test_too_many_mel_bands_for_the_fft_name_both_keys():
    with pytest.raises(ValueError, match=r"audio.n_mels = 80 is too many for audio.n_fft = 320"):
        mel_filterbank(16000, 320, 80)
    assert mel_filterbank(16000, 320, 40).shape == (40, 161)
