"""Audio loading and the DeepSpeech2 spectrogram front end.

Features are log(1 + |STFT|) with n_fft 320 and hop 160 at 16 kHz (20 ms windows,
10 ms hop, 161 frequency bins), normalised per utterance to zero mean and unit
variance, exactly as deepspeech.pytorch and the official MindSpore model compute
them. With ``n_mels`` set, the magnitudes are first summed by a triangular mel filterbank
(log(1 + mel magnitude)): fewer, perceptually spaced bins, as most ASR front ends use. This
module needs only numpy, soundfile and soxr, so the ONNX runtime path works without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Read WAV/FLAC/OGG as float32 mono at ``sample_rate`` (channels averaged, resampled)."""
    if not os.path.isfile(path):
        raise AudioError(f"{path}: audio file not found")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt input
        raise AudioError(f"{path}: cannot decode audio ({e})") from None
    if samples.size == 0:
        raise AudioError(f"{path}: audio file is empty")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header, without decoding the samples."""
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio header ({e})") from None
    return info.frames / info.samplerate


# Normalisation must not amplify a silent recording (a microphone left open, a padding file)
# into unit-variance noise, which a model hears as words. Speech spreads log1p|STFT| with a
# standard deviation of 0.04 or more at any usable level (0.02 with per-bin normalisation;
# the quietest of 600 training utterances of the english recipe measured 0.019-0.04); the
# Asterisk prompts' silence files (16-bit dither) 1e-4. Below the floor nothing is scaled up.
SILENCE_STD = 1e-3


@dataclass(frozen=True)
class FeatureSpec:
    sample_rate: int = 16000
    n_fft: int = 320
    hop_length: int = 160
    window: str = "hamming"
    normalize: bool = True
    # Subtract each frequency bin's mean over the utterance before the global scaling (mean
    # normalisation per bin, Kaldi's CMN): a microphone's, a phone line's or a speaker's fixed
    # spectral colouring is a per-bin offset of the log spectrum, and this takes it away.
    normalize_per_bin: bool = False
    # 0: the n_fft // 2 + 1 linear STFT bins (DeepSpeech2). Otherwise that many mel bands: the
    # frequency axis shrinks (80 instead of 161 bins halves the convolutions' work) and a
    # band-limited 8 kHz recording leaves a quarter of the bands empty instead of half.
    n_mels: int = 0

    @property
    def num_bins(self) -> int:
        return self.n_mels or self.n_fft // 2 + 1

    def bin_frequencies(self) -> np.ndarray:
        """The centre frequency in Hz of each feature bin."""
        if self.n_mels:
            return mel_band_edges(self.sample_rate, self.n_mels)[1:-1]
        return np.arange(self.num_bins) * self.sample_rate / self.n_fft


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)  # HTK's mel scale


def _mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_band_edges(sample_rate: int, n_mels: int) -> np.ndarray:
    """n_mels + 2 frequencies in Hz, evenly spaced on the mel scale from 0 to Nyquist: band k
    rises from edge k to its centre, edge k + 1, and falls to edge k + 2."""
    return _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2), n_mels + 2))


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters of peak 1, shape (n_mels, n_fft // 2 + 1), evenly spaced on the
    mel scale from 0 Hz to the Nyquist frequency. Raises ValueError when a filter would be
    narrower than the FFT's bin spacing and catch no bin (too many bands for n_fft)."""
    edges = mel_band_edges(sample_rate, n_mels)
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - low) / (centre - low)
    falling = (high - bins[None, :]) / (high - centre)
    filters = np.clip(np.minimum(rising, falling), 0.0, None)
    empty = np.flatnonzero(filters.max(axis=1) <= 0)
    if len(empty):
        raise ValueError(f"audio.n_mels = {n_mels} is too many for audio.n_fft = {n_fft}: mel band {int(empty[0])} "
                         f"({centre[empty[0], 0]:.0f} Hz) covers no FFT bin; lower audio.n_mels or raise audio.n_fft")
    return filters.astype(np.float32)


def magnitude_features(magnitude: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """log(1 + |STFT|) of frames x (n_fft // 2 + 1) magnitudes, through the mel filterbank
    when ``spec.n_mels`` is set: (num_bins, frames), float32, not normalised, not contiguous."""
    if spec.n_mels:
        magnitude = magnitude @ mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels).T
    # The transposed view, not a copy: the normalisation's sums then run in the memory order
    # they always did, so linear features stay bit for bit what earlier releases computed.
    return np.log1p(magnitude).T.astype(np.float32)


def _window(name: str, length: int) -> np.ndarray:
    # Symmetric windows, as scipy.signal.hamming/hann give librosa in both reference
    # implementations.
    if name == "hamming":
        return np.hamming(length).astype(np.float32)
    if name == "hann":
        return np.hanning(length).astype(np.float32)
    raise ValueError(f"audio.window must be 'hamming' or 'hann', got {name!r}")


def spectrogram(samples: np.ndarray, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """log1p|STFT| features (or log1p of mel magnitudes) of shape (num_bins, frames), float32.

    Frames are centred (the signal is reflect-padded by n_fft // 2 on both sides), as
    librosa.stft does by default, so there are 1 + len // hop frames.
    """
    n_fft, hop = spec.n_fft, spec.hop_length
    samples = np.asarray(samples, dtype=np.float32)
    pad = n_fft // 2
    mode = "reflect" if len(samples) > pad else "constant"
    padded = np.pad(samples, pad, mode=mode)
    num_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(num_frames, n_fft), strides=(padded.strides[0] * hop, padded.strides[0]))
    magnitude = np.abs(np.fft.rfft(frames * _window(spec.window, n_fft), n=n_fft, axis=1))
    features = magnitude_features(magnitude, spec)
    if spec.normalize:
        # Each branch computes exactly the float32 sums its published figures were measured
        # with: the std of a centred copy differs in the last bit, and the quickstart's training
        # is chaotic enough that such a change moves its test WER by a point or more.
        if spec.normalize_per_bin:
            features = features - features.mean(axis=1, keepdims=True)
            std = features.std()
        else:
            std = features.std()  # of the uncentred features
            features = features - features.mean()
        features = features / max(float(std), SILENCE_STD)
    return np.ascontiguousarray(features)


def load_features(path: str | os.PathLike, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    return spectrogram(load_audio(path, spec.sample_rate), spec)

