"""Data augmentation for training, on the fly and seeded: every training batch sees new audio.

Two kinds, applied where they are cheapest:

* waveform effects (``augment_waveform``): speed perturbation (soxr resampling), additive
  noise at a random SNR (coloured noise, babble made of other training utterances, files of
  a noise folder), reverberation with a synthetic room impulse response, a telephone channel
  (300-3400 Hz, 8 kHz round trip, mu-law) and random gain with a DC offset. They need the
  samples, so an augmented utterance is decoded and featurised again instead of read from
  the feature cache; ``augment.wave_prob`` sets how many are.
* feature effects (``augment_features``): vocal-tract-length perturbation (a warp of the
  frequency axis) and SpecAugment frequency and time masks, on the cached spectrogram.

Everything draws from a ``numpy.random.Generator`` that the training loop seeds from
(seed, epoch, step), so a resumed run sees the same augmentations. Evaluation never
augments. The settings are ``augment.*`` config keys (``config.AugmentConfig``), whose
ranges ``config.validate`` checks.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..audio import AudioError, FeatureSpec, load_audio, spectrogram
from ..config import AugmentConfig

NOISE_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


# --- waveform effects -------------------------------------------------------------------

def speed_perturb(samples: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together, as Kaldi's speed perturbation):
    resample to ``sample_rate / factor`` and read the result at ``sample_rate``."""
    if factor == 1.0:
        return samples
    return soxr.resample(samples, sample_rate, sample_rate / factor, quality="MQ").astype(np.float32)


def coloured_noise(length: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=length)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples`` plus ``noise`` (tiled or cut to length) scaled to ``snr_db`` dB SNR."""
    if len(noise) < len(samples):
        noise = np.tile(noise, int(np.ceil(len(samples) / max(1, len(noise)))))
    noise = noise[: len(samples)]
    signal_power = float(np.mean(samples.astype(np.float64) ** 2))
    noise_power = float(np.mean(noise.astype(np.float64) ** 2))
    if signal_power == 0.0 or noise_power == 0.0:
        return samples
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (samples + scale * noise).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60: float, sample_rate: int = 16000) -> np.ndarray:
    """A room impulse response: a direct path then exponentially decaying noise whose
    level falls by 60 dB in ``rt60`` seconds (a diffuse-field reverberation model)."""
    length = max(2, int(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    decay = np.exp(-6.9078 * t / rt60)  # ln(1000): -60 dB at rt60
    rir = rng.standard_normal(length) * decay
    delay = int(rng.integers(int(0.002 * sample_rate), int(0.01 * sample_rate)))
    rir[:delay] = 0.0
    rir[0] = 1.0 / 0.3  # the direct path, stronger than any single reflection
    return (rir / np.sqrt(np.sum(rir ** 2))).astype(np.float32)


def reverberate(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` (FFT), keeping the length and the peak level."""
    n = len(samples) + len(rir) - 1
    size = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(rir, size), size)[: len(samples)]
    peak_in, peak_out = float(np.max(np.abs(samples))), float(np.max(np.abs(wet)))
    if peak_out > 0:
        wet *= peak_in / peak_out
    return wet.astype(np.float32)


def mu_law(samples: np.ndarray, mu: int = 255) -> np.ndarray:
    """Encode to 8-bit mu-law and decode again (G.711's quantisation)."""
    x = np.clip(samples, -1.0, 1.0)
    encoded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    quantised = np.round((encoded + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(quantised) * ((1 + mu) ** np.abs(quantised) - 1) / mu).astype(np.float32)


def telephone(samples: np.ndarray, sample_rate: int = 16000, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """A telephone channel: band-pass ``low``-``high`` Hz, down to 8 kHz with mu-law, back up."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1.0 / sample_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    band = np.fft.irfft(spectrum, n=len(samples)).astype(np.float32)
    peak = float(np.max(np.abs(band)))
    if peak > 1.0:
        band /= peak
    narrow = mu_law(soxr.resample(band, sample_rate, 8000, quality="MQ"))
    wide = soxr.resample(narrow, 8000, sample_rate, quality="MQ").astype(np.float32)
    out = np.zeros(len(samples), dtype=np.float32)
    out[: min(len(out), len(wide))] = wide[: len(out)]
    return out


def gain_and_dc(samples: np.ndarray, gain_db: float, dc: float) -> np.ndarray:
    return (samples * 10 ** (gain_db / 20) + dc).astype(np.float32)


# --- feature effects --------------------------------------------------------------------

def spec_augment(features: np.ndarray, rng: np.random.Generator, freq_masks: int, freq_width: int,
                 time_masks: int, time_width: float) -> np.ndarray:
    """SpecAugment masks on a (bins, frames) spectrogram: ``freq_masks`` bands of up to
    ``freq_width`` bins and ``time_masks`` spans of up to ``time_width`` of the frames, set
    to the utterance's mean (0 for normalised features). Returns a new array."""
    out = np.array(features, dtype=np.float32, copy=True)
    bins, frames = out.shape
    fill = float(out.mean())
    for _ in range(freq_masks):
        width = int(rng.integers(0, min(freq_width, bins) + 1))
        start = int(rng.integers(0, bins - width + 1))
        out[start: start + width, :] = fill
    max_t = int(time_width * frames)
    for _ in range(time_masks):
        width = int(rng.integers(0, max_t + 1))
        start = int(rng.integers(0, frames - width + 1))
        out[:, start: start + width] = fill
    return out


def vtlp(features: np.ndarray, alpha: float, frequencies: np.ndarray | None = None) -> np.ndarray:
    """Vocal tract length perturbation: stretch the frequency axis by ``alpha`` (>1 moves
    formants up, as a shorter vocal tract does), piecewise linear so the top bin stays put.
    ``frequencies``: each bin's centre frequency (``FeatureSpec.bin_frequencies``), so the warp
    is linear in Hz on mel bins too; default: evenly spaced (linear STFT) bins."""
    if alpha == 1.0:
        return features
    bins = features.shape[0]
    index = np.arange(bins, dtype=np.float64)
    hz = index if frequencies is None else np.asarray(frequencies, dtype=np.float64)
    top = hz[-1]
    boundary = 0.8 * top * min(1.0, 1.0 / alpha)
    # Output bin k takes the input at the frequency source(hz[k]): inverse of the warp f -> alpha * f
    # below the boundary, and a straight line to the top bin above it.
    warped_boundary = alpha * boundary
    source_hz = np.where(hz <= warped_boundary, hz / alpha,
                         boundary + (hz - warped_boundary) * (top - boundary) / max(top - warped_boundary, 1e-9))
    source = np.interp(source_hz, hz, index)
    top_bin = bins - 1
    low = np.clip(np.floor(source).astype(np.int64), 0, top_bin)
    high = np.minimum(low + 1, top_bin)
    frac = (source - low)[:, None].astype(np.float32)
    return ((1 - frac) * features[low] + frac * features[high]).astype(np.float32)


# --- noise sources ----------------------------------------------------------------------

def scan_noise_folder(folder: str | os.PathLike, sample_rate: int = 16000) -> tuple[list[str], list[str]]:
    """Readable audio files under ``folder`` (MUSAN's noise/music/speech layout works as is)
    and ``path: reason`` for each unreadable one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"augment.noise_dir: {folder} is not a folder")
    usable, problems = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in NOISE_EXTENSIONS):
        try:
            info = sf.info(str(path))
            if info.frames == 0:
                raise ValueError("no samples")
        except Exception as e:  # soundfile raises several types for corrupt files
            problems.append(f"{path}: {e}")
            continue
        usable.append(str(path))
    return usable, problems


class Augmenter:
    """Applies ``AugmentConfig`` to training utterances; one per training run."""

    def __init__(self, cfg: AugmentConfig, spec: FeatureSpec, babble_pool: int = 64, quiet: bool = False):
        self.cfg, self.spec = cfg, spec
        self.sample_rate = spec.sample_rate
        self.bin_frequencies = spec.bin_frequencies()
        # Recent clean training utterances: the babble source, refilled as training reads audio.
        self.babble: deque[np.ndarray] = deque(maxlen=babble_pool)
        self.noise_files: list[str] = []
        if cfg.noise_dir:
            self.noise_files, problems = scan_noise_folder(cfg.noise_dir, self.sample_rate)
            for problem in problems[:20]:
                print(f"augment: unreadable noise file skipped: {problem}", file=sys.stderr)
            if len(problems) > 20:
                print(f"augment: {len(problems) - 20} more unreadable noise files skipped", file=sys.stderr)
            if not self.noise_files:
                raise FileNotFoundError(f"augment.noise_dir: no readable audio files in {cfg.noise_dir}")
            if not quiet:
                print(f"augment: {len(self.noise_files)} noise files from {cfg.noise_dir}")

    @property
    def uses_waveform(self) -> bool:
        c = self.cfg
        return c.wave_prob > 0 and (any(s != 1.0 for s in c.speed) or c.noise_prob > 0 or c.reverb_prob > 0
                                    or c.telephone_prob > 0 or c.gain_db > 0 or c.dc_offset > 0)

    def wants_waveform(self, rng: np.random.Generator) -> bool:
        return self.uses_waveform and rng.random() < self.cfg.wave_prob

    def _noise(self, length: int, rng: np.random.Generator) -> np.ndarray:
        kinds = ["coloured"] + (["babble"] if len(self.babble) >= 3 else []) + (["file"] if self.noise_files else [])
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "babble":
            picks = rng.choice(len(self.babble), size=min(len(self.babble), int(rng.integers(3, 7))), replace=False)
            noise = np.zeros(length, dtype=np.float32)
            for i in picks:
                clip = self.babble[int(i)]
                clip = np.tile(clip, int(np.ceil(length / len(clip))))
                offset = int(rng.integers(0, len(clip) - length + 1))
                part = clip[offset: offset + length]
                noise += part / (np.std(part) + 1e-8)
            return noise
        if kind == "file":
            path = self.noise_files[int(rng.integers(len(self.noise_files)))]
            try:
                noise = load_audio(path, self.sample_rate)
            except AudioError as e:
                print(f"augment: noise file skipped: {e}", file=sys.stderr)
                return coloured_noise(length, rng, 1.0)
            if len(noise) > length:
                offset = int(rng.integers(0, len(noise) - length + 1))
                noise = noise[offset: offset + length]
            return noise
        return coloured_noise(length, rng, float(rng.uniform(0.0, 2.0)))

    def augment_waveform(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c, rate = self.cfg, self.sample_rate
        clean = samples
        if c.speed:
            samples = speed_perturb(samples, float(c.speed[int(rng.integers(len(c.speed)))]), rate)
        if c.reverb_prob and rng.random() < c.reverb_prob:
            samples = reverberate(samples, synthetic_rir(rng, float(rng.uniform(*c.reverb_rt60)), rate))
        if c.noise_prob and rng.random() < c.noise_prob:
            samples = add_noise(samples, self._noise(len(samples), rng), float(rng.uniform(*c.noise_snr)))
        if c.telephone_prob and rng.random() < c.telephone_prob:
            samples = telephone(samples, rate)
        if c.gain_db or c.dc_offset:
            samples = gain_and_dc(samples, float(rng.uniform(-c.gain_db, c.gain_db)),
                                  float(rng.uniform(-c.dc_offset, c.dc_offset)))
        self.babble.append(clean)
        return samples

    def augment_features(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        features = np.asarray(features, dtype=np.float32)
        if c.vtlp_prob and rng.random() < c.vtlp_prob:
            features = vtlp(features, float(rng.uniform(*c.vtlp_alpha)), self.bin_frequencies)
        if c.freq_masks or c.time_masks:
            features = spec_augment(features, rng, c.freq_masks, c.freq_width, c.time_masks, c.time_width)
        return features

    def features(self, audio_path: str, cached: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Augmented features of one training utterance (``cached``: its cached features)."""
        if cached is None or self.wants_waveform(rng):
            samples = load_audio(audio_path, self.sample_rate)
            features = spectrogram(self.augment_waveform(samples, rng), self.spec)
        else:
            features = cached
        return self.augment_features(features, rng)


def enabled(cfg: AugmentConfig) -> bool:
    """Whether ``cfg`` changes anything at all."""
    return bool(cfg.freq_masks or cfg.time_masks or cfg.vtlp_prob
                or (cfg.wave_prob and (any(s != 1.0 for s in cfg.speed) or cfg.noise_prob or cfg.reverb_prob
                                       or cfg.telephone_prob or cfg.gain_db or cfg.dc_offset)))


__all__: Sequence[str] = ["Augmenter", "add_noise", "coloured_noise", "enabled", "gain_and_dc", "mu_law",
                          "reverberate", "scan_noise_folder", "spec_augment", "speed_perturb", "synthetic_rir",
                          "telephone", "vtlp"]
