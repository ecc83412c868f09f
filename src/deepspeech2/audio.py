"""Audio loading and the DeepSpeech2 spectrogram front end.

Features are log(1 + |STFT|) with n_fft 320 and hop 160 at 16 kHz (20 ms windows,
10 ms hop, 161 frequency bins), normalised per utterance to zero mean and unit
variance, exactly as deepspeech.pytorch and the official MindSpore model compute
them. This module needs only numpy, soundfile and soxr, so the ONNX runtime path
works without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1


def _window(name: str, length: int) -> np.ndarray:
    # Symmetric windows, as scipy.signal.hamming/hann give librosa in both reference
    # implementations.
    if name == "hamming":
        return np.hamming(length).astype(np.float32)
    if name == "hann":
        return np.hanning(length).astype(np.float32)
    raise ValueError(f"audio.window must be 'hamming' or 'hann', got {name!r}")


def spectrogram(samples: np.ndarray, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """log1p|STFT| features of shape (num_bins, frames), float32.

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
    features = np.log1p(magnitude).T.astype(np.float32)
    if spec.normalize:
        features = features - (features.mean(axis=1, keepdims=True) if spec.normalize_per_bin else features.mean())
        features = features / max(float(features.std()), SILENCE_STD)
    return np.ascontiguousarray(features)


def load_features(path: str | os.PathLike, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    return spectrogram(load_audio(path, spec.sample_rate), spec)

