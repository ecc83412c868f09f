"""One configuration object: dataclasses, YAML files and ``key=value`` overrides.

    cfg = load_config("configs/mini.yaml", ["train.lr=1e-3", "model.rnn_layers=3"])

The whole config is saved inside every checkpoint, so a checkpoint alone is enough to
rebuild its model and features.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .atomic import atomic_write_text
from .audio import FeatureSpec, mel_filterbank

CONFIG_DIR = Path(__file__).parent / "configs"  # the packaged configs (``config_path`` names them)
# The network of the official MindSpore checkpoint (and of a .ckpt without a config inside).
OFFICIAL_CONFIG = CONFIG_DIR / "mindspore_official.yaml"


class ConfigError(ValueError):
    """A missing, unknown or invalid configuration key; the message names it."""


@dataclass
class AudioConfig:
    sample_rate: int = 16000
    n_fft: int = 320
    hop_length: int = 160
    window: str = "hamming"
    normalize: bool = True
    normalize_per_bin: bool = False  # with normalize: each bin's own mean is subtracted (channel normalisation)
    n_mels: int = 0  # 0: linear STFT bins (DeepSpeech2); else log-mel features with that many bands

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(self.sample_rate, self.n_fft, self.hop_length, self.window, self.normalize,
                           self.normalize_per_bin, self.n_mels)

    @property
    def num_bins(self) -> int:
        """Feature bins per frame: the network's input height."""
        return self.feature_spec().num_bins


@dataclass
class TextConfig:
    blank: str = "last"  # the official MindSpore model; deepspeech.pytorch uses "first"
    spell_numbers: bool = True


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """A convolution's output length along one axis, with ``kernel // 2`` padding on each side (both
    backends' networks, and the bench's FLOP model)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass
class ModelConfig:
    # Kernels and strides are (frequency, time).
    conv_channels: list[int] = field(default_factory=lambda: [32, 32])
    conv_kernels: list[list[int]] = field(default_factory=lambda: [[41, 11], [21, 11]])
    conv_strides: list[list[int]] = field(default_factory=lambda: [[2, 2], [2, 1]])
    conv_activation: str = "tanh"
    rnn_type: str = "lstm"
    rnn_hidden: int = 1024
    rnn_layers: int = 5
    bidirectional: bool = True
    rnn_batchnorm: bool = False
    lookahead_context: int = 20
    # deepspeech.pytorch's network (ds2 convert of its checkpoints): convolutions with a bias,
    # and BatchNorm before the output layer.
    conv_bias: bool = False
    fc_batchnorm: bool = False
    mask_padding: bool = True

    def output_frames(self, num_frames: int) -> int:
        """Frames the network outputs for ``num_frames`` input frames (the time strides)."""
        for kernel, stride in zip(self.conv_kernels, self.conv_strides, strict=False):
            num_frames = conv_output_size(num_frames, kernel[1], stride[1])
        return num_frames

    def rnn_input_size(self, num_bins: int) -> int:
        """Features per frame the convolutions give the first RNN: channels x frequency bins left."""
        for kernel, stride in zip(self.conv_kernels, self.conv_strides, strict=False):
            num_bins = conv_output_size(num_bins, kernel[0], stride[0])
        return self.conv_channels[-1] * num_bins if self.conv_channels else num_bins

    @property
    def time_stride(self) -> int:
        stride = 1
        for _, s in self.conv_strides:
            stride *= s
        return stride


@dataclass
class DataConfig:
    train_manifest: str = ""
    dev_manifest: str = ""
    min_duration: float = 0.0
    max_duration: float = 15.0
    cache_dir: str = ""  # feature cache; default: $DS2_CACHE or ~/.cache/deepspeech2/features
    num_workers: int = 2  # processes that compute features


@dataclass
class TrainConfig:
    epochs: int = 70
    batch_size: int = 20
    optimizer: str = "adam"
    lr: float = 3e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD-Nesterov only
    lr_schedule: str = "official"
    lr_decay: float = 1.1  # "official": divide by this every epoch of the second half
    warmup_steps: int = 0
    min_lr: float = 0.0  # "cosine": final learning rate
    grad_clip: float = 400.0
    sortagrad: bool = True
    seed: int = 1
    log_every: int = 10
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: epoch ends only
    keep_checkpoints: int = 5
    early_stopping: int = 0  # epochs without a better dev WER before stopping; 0: off
    max_steps: int = 0  # stop after this many optimizer steps in total; 0: no limit
    max_minutes: float = 0.0  # wall-clock training budget (resumed runs count earlier time); 0: no limit
    threads: int = 0  # torch intra-op threads; 0: all cores
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes kept fixed
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast on GPU)
    eval_batch_size: int = 32


@dataclass
class AugmentConfig:
    """On-the-fly training augmentation (data/augment.py); all off by default."""

    freq_masks: int = 0  # SpecAugment frequency masks per utterance
    freq_width: int = 27  # ... each up to this many bins
    time_masks: int = 0  # SpecAugment time masks per utterance
    time_width: float = 0.05  # ... each up to this fraction of the frames
    vtlp_prob: float = 0.0  # vocal-tract-length perturbation (frequency-axis warp)
    vtlp_alpha: list[float] = field(default_factory=lambda: [0.9, 1.1])
    wave_prob: float = 0.0  # share of utterances decoded again for the waveform effects below
    speed: list[float] = field(default_factory=lambda: [1.0])  # speed factors, one drawn per utterance
    noise_prob: float = 0.0  # additive noise: coloured, babble of other utterances, noise_dir files
    noise_snr: list[float] = field(default_factory=lambda: [5.0, 30.0])  # dB, drawn uniformly
    noise_dir: str = ""  # optional folder of noise audio (e.g. MUSAN)
    reverb_prob: float = 0.0  # synthetic room impulse responses
    reverb_rt60: list[float] = field(default_factory=lambda: [0.2, 0.7])  # seconds
    telephone_prob: float = 0.0  # 300-3400 Hz, 8 kHz, mu-law
    gain_db: float = 0.0  # random gain in +-gain_db
    dc_offset: float = 0.0  # random DC offset in +-dc_offset


# key: (low, high) inclusive bounds that config.validate enforces, for scalars and list items.
AUGMENT_RANGES: dict[str, tuple[float, float]] = {
    "freq_masks": (0, 10), "freq_width": (0, 80), "time_masks": (0, 20), "time_width": (0.0, 0.5),
    "vtlp_prob": (0.0, 1.0), "vtlp_alpha": (0.7, 1.3), "wave_prob": (0.0, 1.0), "speed": (0.5, 2.0),
    "noise_prob": (0.0, 1.0), "noise_snr": (-10.0, 60.0), "reverb_prob": (0.0, 1.0),
    "reverb_rt60": (0.05, 2.0), "telephone_prob": (0.0, 1.0), "gain_db": (0.0, 30.0), "dc_offset": (0.0, 0.2),
}


@dataclass
class Config:
    name: str = "deepspeech2"
    backend: str = "torch"
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> Config:
        cfg = cls()
        _update(cfg, values, "", source)
        try:
            validate(cfg)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        return cfg


CHOICES: dict[str, tuple] = {
    "backend": ("torch", "mindspore"),
    "audio.window": ("hamming", "hann"),
    "text.blank": ("first", "last"),
    "model.conv_activation": ("tanh", "hardtanh"),
    "model.rnn_type": ("lstm", "gru", "rnn"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.lr_schedule": ("official", "constant", "cosine"),
    "train.precision": ("fp32", "bf16", "fp16"),
}


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        (inner,) = typing.get_args(annotation)
        return [_coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is str:
        return "" if value is None else str(value)
    raise ConfigError(f"{source}: {key} must be {getattr(annotation, '__name__', annotation)}, got {value!r}")


def _update(obj: Any, values: dict, prefix: str, source: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for name, value in values.items():
        key = prefix + str(name)
        if name not in names:
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(prefix + n for n in names)}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _update(current, value, key + ".", source)
        else:
            setattr(obj, name, _coerce(value, hints[name], key, source))


def validate(cfg: Config) -> None:
    for key, choices in CHOICES.items():
        value = get_key(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key} = {value!r} is not valid; choose one of: {', '.join(choices)}")
    m = cfg.model
    if not (len(m.conv_channels) == len(m.conv_kernels) == len(m.conv_strides)):
        raise ConfigError("model.conv_channels, model.conv_kernels and model.conv_strides must have the same length")
    for key in ("model.conv_kernels", "model.conv_strides"):
        if any(len(pair) != 2 for pair in get_key(cfg, key)):
            raise ConfigError(f"{key} entries must be [frequency, time] pairs")
    if cfg.audio.normalize_per_bin and not cfg.audio.normalize:
        raise ConfigError("audio.normalize_per_bin needs audio.normalize: true (it is a kind of per-utterance "
                          "normalisation, which a streaming model cannot use)")
    positive = ["model.rnn_layers", "model.rnn_hidden", "train.batch_size", "train.epochs", "train.log_every",
                "train.eval_batch_size", "train.lr_decay", "audio.n_fft", "audio.hop_length", "audio.sample_rate"]
    non_negative = ["train.checkpoint_every", "train.keep_checkpoints", "train.max_steps", "train.warmup_steps",
                    "train.early_stopping", "train.grad_clip", "train.lr", "data.min_duration", "train.threads",
                    "train.max_minutes"]
    for key in positive:
        if get_key(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {get_key(cfg, key)}")
    for key in non_negative:
        if get_key(cfg, key) < 0:
            raise ConfigError(f"{key} must not be negative, got {get_key(cfg, key)}")
    if cfg.audio.n_mels < 0:
        raise ConfigError(f"audio.n_mels must be 0 (linear STFT bins) or a number of mel bands, got {cfg.audio.n_mels}")
    if cfg.audio.n_mels:
        try:
            mel_filterbank(cfg.audio.sample_rate, cfg.audio.n_fft, cfg.audio.n_mels)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if any(s < 1 for pair in m.conv_strides for s in pair) or any(c < 1 for c in m.conv_channels):
        raise ConfigError("model.conv_strides and model.conv_channels must be positive")
    _validate_augment(cfg.augment)
    if cfg.data.max_duration <= cfg.data.min_duration:
        raise ConfigError(f"data.max_duration ({cfg.data.max_duration}) must exceed data.min_duration "
                          f"({cfg.data.min_duration})")


def _validate_augment(a: AugmentConfig) -> None:
    for name, (low, high) in AUGMENT_RANGES.items():
        value = getattr(a, name)
        for v in value if isinstance(value, list) else [value]:
            if not low <= v <= high:
                raise ConfigError(f"augment.{name} = {value!r} is out of range; valid: {low} to {high}")
    for name in ("vtlp_alpha", "noise_snr", "reverb_rt60"):
        value = getattr(a, name)
        if len(value) != 2 or value[0] > value[1]:
            raise ConfigError(f"augment.{name} must be [low, high] with low <= high, got {value!r}")
    if not a.speed:
        raise ConfigError("augment.speed must list at least one factor, e.g. [0.9, 1.0, 1.1]")


def get_key(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def parse_overrides(overrides: list[str]) -> dict:
    """``["train.lr=1e-3", "model.rnn_type=gru"]`` -> nested dict, values parsed as YAML."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. train.lr=1e-3")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> Config:
    """Defaults <- ``base`` (e.g. a checkpoint's config) <- YAML file <- overrides."""
    values: dict = dict(base or {})
    source = "config"
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        values = _merge(values, loaded)
        source = str(path)
    if overrides:
        values = _merge(values, parse_overrides(overrides))
    return Config.from_dict(values, source)


def save_config(cfg: Config, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def config_path(name_or_path: str) -> Path:
    """A config file path, or the name of a packaged config (``mini``, ``fsdd``…)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{name_or_path.removesuffix('.yaml')}.yaml"
    if packaged.is_file():
        return packaged
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"config {name_or_path!r} not found; packaged configs: {names}")
