"""MindSpore backend: graph-mode train step with loss scaling, inference, .ckpt checkpoints.

Training runs in ``GRAPH_MODE`` on static shapes, as the official recipe does, but
instead of padding every utterance to 1,501 frames (15 s) a batch's features are
padded to the next of a few fixed bucket lengths (``bucket_length``), so a run
compiles a handful of graphs and wastes little compute. Inference runs one
dynamic-shape graph (``Cell.set_inputs`` with ``None`` dimensions) on the batch as it
is, so its output is the PyTorch backend's for the same batch (GRU and RNN cells on CPU
need static shapes: see ``dynamic_shapes``).

A checkpoint is one MindSpore ``.ckpt`` file: the network's parameters under the
official names, the optimizer's state under MindSpore's own names (``moment1.*``,
``moment2.*``, ``beta1_power``…, as the official ``ModelCheckpoint`` writes them), the
loss scale, and the config, format tag and training progress as strings
(``append_dict`` entries ``deepspeech2_config`` …). The official checkpoints load
too: their optimizer state is ignored by ``--pretrained`` and ``eval``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ...atomic import atomic_output
from ...config import Config
from ...data.dataset import Batch
from ...text import Alphabet
from ..common import check_parameter_shapes, frozen_parameters, optimizer_choice
from .ckpt_file import META_PREFIX, CkptFormatError, read_ckpt_file, split_checkpoint

CHECKPOINT_FORMAT = "deepspeech2-mindspore"
LOSS_SCALE = 1024.0  # the official recipe's loss scale
TARGETS = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend", "npu": "Ascend"}


def bucket_length(frames: int) -> int:
    """The static length a training batch of ``frames`` frames is padded to.

    Half-octave buckets: above 64 frames, lengths are rounded up to 3/4 or all of the next
    power of two (…, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048), so padding adds
    at most half (just above a power of two) and a corpus of 1-15 s
    utterances compiles 8 graphs, against the official recipe's one graph padded to 1,501
    frames. Few shapes matter more than little padding here: each compiled graph keeps
    its own memory (0.6-1 GB for the mini model at batch 16 on CPU)."""
    if frames <= 64:
        return 64
    step = (1 << (frames - 1).bit_length()) // 4
    return step * -(-frames // step)


def device_target(name: str) -> tuple[str | None, int | None]:
    """``auto`` | ``cpu`` | ``gpu[:N]`` (``cuda[:N]``) | ``ascend[:N]`` (``npu[:N]``) -> MindSpore target, id.
    ``auto`` keeps the default of the installed MindSpore package."""
    if name == "auto":
        return None, None
    kind, _, index = name.lower().partition(":")
    if kind not in TARGETS or (index and not index.isdigit()):
        raise ValueError(f"train.device={name!r}: the MindSpore backend runs on auto, cpu, gpu[:N] or ascend[:N]")
    return TARGETS[kind], int(index) if index else None


def configure_context(device: str, threads: int) -> str:
    """Graph mode on the chosen device; returns the device target."""
    import mindspore as ms

    target, index = device_target(device)
    ms.set_context(mode=ms.GRAPH_MODE)
    current = ms.get_context("device_target")
    if target is not None and (target != current or index is not None):
        try:
            ms.set_device(target, index) if index is not None else ms.set_device(target)
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"MindSpore cannot use device {device!r}: {e}") from None
    target = ms.get_context("device_target")
    if target == "CPU":
        from mindspore.device_context.cpu import op_tuning

        try:  # MindSpore's default (25 threads) oversubscribes small machines; settable once per process.
            op_tuning.threads_num(threads or os.cpu_count() or 1)
        except RuntimeError:
            pass
    return target


def read_ckpt(path: str | Path, metadata_only: bool = False) -> dict:
    """Every entry of a MindSpore checkpoint (parameters as numpy arrays, metadata as str).

    Parsed by our own protobuf reader first: ``mindspore.load_checkpoint`` refuses any file
    larger than the *free* memory (page cache not counted), so the 87M-parameter official
    model failed to load on a machine whose RAM was merely full of cache. MindSpore's own
    loader remains the fallback for what our reader does not know (encrypted files).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        loaded = read_ckpt_file(path)
    except CkptFormatError as first_error:
        import mindspore as ms

        try:
            loaded = {name: value if isinstance(value, str) else value.asnumpy().copy()
                      for name, value in ms.load_checkpoint(str(path)).items()}
        except Exception:  # MindSpore raises ValueError/RuntimeError with long C++ traces
            raise ValueError(str(first_error)) from None
    if metadata_only:
        return {name: value for name, value in loaded.items() if name.startswith(META_PREFIX)}
    return loaded


def checkpoint_metadata(path: str | Path) -> dict:
    """format, version, config (dict), progress (dict) of one of our .ckpt files; {} for others."""
    meta = {k[len(META_PREFIX):]: v for k, v in read_ckpt(path, metadata_only=True).items()}
    out: dict = {}
    for key, value in meta.items():
        out[key] = json.loads(value) if key in ("config", "progress") else value
    return out


class MindSporeBackend:
    name = "mindspore"
    checkpoint_suffix = ".ckpt"

    def __init__(self, cfg: Config, device: str | None = None):
        import mindspore as ms

        from .model import DeepSpeech2

        self.cfg = cfg
        self.ms = ms
        self.target = configure_context(device or cfg.train.device, cfg.train.threads)
        ms.set_seed(cfg.train.seed)
        self.alphabet = Alphabet(cfg.text.blank)
        self.net = DeepSpeech2(cfg.model, cfg.audio.num_bins, len(self.alphabet))
        self._initialise()
        self._train_cell = None
        self._optimizer = None
        self._infer = None
        self._frozen: list[str] = []
        self._lr = cfg.train.lr

    def _initialise(self) -> None:
        """The PyTorch backend's initial weights for this config and seed (PyTorch's default
        initialisers, drawn by PyTorch), so that ``--backend torch`` and ``--backend
        mindspore`` start from the same network (``convert.initial_parameters``)."""
        from .convert import initial_parameters

        self._check_and_load("the PyTorch initialisation", initial_parameters(self.cfg, len(self.alphabet)))

    # -- training ---------------------------------------------------------------
    def _build_optimizer(self):
        from mindspore import Parameter, Tensor, nn

        t = self.cfg.train
        params = [p for p in self.net.trainable_params() if p.name not in self._frozen]
        lr = Parameter(Tensor(self._lr, self.ms.float32), name="learning_rate")
        kind, options = optimizer_choice(t)
        optimizers = {"adam": nn.Adam, "adamw": nn.AdamWeightDecay, "sgd": nn.SGD}
        return optimizers[kind](params, learning_rate=lr, **options)

    def _ensure_train_cell(self):
        if self._train_cell is None:
            from .train_cell import LossCell, TrainStep

            self._optimizer = self._build_optimizer()
            loss = LossCell(self.net, self.alphabet.blank_id)
            self._train_cell = TrainStep(loss, self._optimizer, LOSS_SCALE, self.cfg.train.grad_clip)
        return self._train_cell

    def freeze(self, prefixes: list[str]) -> list[str]:
        """Keep parameters whose names start with one of ``prefixes`` fixed."""
        frozen = frozen_parameters([p.name for p in self.net.trainable_params()], prefixes)
        for p in self.net.trainable_params():
            if p.name in frozen:
                p.requires_grad = False
        self._frozen = frozen
        self._train_cell = self._optimizer = None
        return frozen

    def num_parameters(self) -> int:
        from .model import count_parameters

        return count_parameters(self.net)

    def set_lr(self, lr: float) -> None:
        self._lr = lr
        if self._optimizer is not None:
            # A Parameter, read by the optimizer's graph at its next run (see TrainStep for why
            # that graph is separate from the gradient's).
            self._optimizer.learning_rate.set_data(self.ms.Tensor(lr, self.ms.float32))

    def _padded(self, batch: Batch, frames: int) -> np.ndarray:
        """The features zero-padded to ``frames``, always in a new array."""
        features = np.zeros((*batch.features.shape[:2], frames), dtype=np.float32)
        features[:, :, : batch.features.shape[2]] = batch.features
        return features

    def train_step(self, batch: Batch) -> float | None:
        cell = self._ensure_train_cell()
        cell.set_train(True)
        frames = bucket_length(batch.features.shape[2])
        # Targets padded to the most labels the bucket's output can align (CTC needs one
        # frame per label), so their width is fixed by the bucket too.
        width = max(self.cfg.model.output_frames(frames), batch.targets.shape[1])
        targets = np.zeros((len(batch), width), dtype=np.int32)
        targets[:, : batch.targets.shape[1]] = batch.targets
        Tensor = self.ms.Tensor
        loss, overflow, grads = cell(Tensor(self._padded(batch, frames)),
                                     Tensor(batch.feature_lengths.astype(np.int32)), Tensor(targets),
                                     Tensor(batch.target_lengths.astype(np.int32)))
        loss = float(loss.asnumpy())
        if bool(overflow.asnumpy()) or not math.isfinite(loss):
            return None  # skipped; the loss scale has been halved
        # mutable: a tuple of tensors passed to a graph is otherwise a constant of that graph
        # (its values compiled in, and a recompile whenever they change).
        self._optimizer(self.ms.mutable(grads))
        return loss

    @property
    def dynamic_shapes(self) -> bool:
        """Whether inference can run one graph for every shape. MindSpore's GRU and RNN on
        CPU unroll a Python loop over time steps, which needs the length at compile time."""
        return self.cfg.model.rnn_type == "lstm" or self.target != "CPU"

    def _inference_cell(self):
        if self._infer is None:
            from mindspore import Tensor

            from .train_cell import Inference

            self._infer = Inference(self.net)
            if self.dynamic_shapes:
                bins = self.cfg.audio.num_bins
                self._infer.set_inputs(Tensor(shape=[None, bins, None], dtype=self.ms.float32),
                                       Tensor(shape=[None], dtype=self.ms.int32))
        return self._infer

    def log_probs(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        cell = self._inference_cell()
        self.net.set_train(False)
        frames = batch.features.shape[2]
        if not self.dynamic_shapes and self.cfg.model.mask_padding:
            # Static shapes: pad to a bucket, which changes nothing when padding is masked
            # (without masks the batch's own length keeps the output what PyTorch gives).
            frames = bucket_length(frames)
        Tensor = self.ms.Tensor
        log_probs, lengths = cell(Tensor(self._padded(batch, frames)), Tensor(batch.feature_lengths.astype(np.int32)))
        lengths = lengths.asnumpy().astype(np.int64)
        # Bucket padding adds output frames: cut back to what the batch itself gives.
        return log_probs.asnumpy()[:, : self.cfg.model.output_frames(batch.features.shape[2])], lengths

    # -- checkpoints ------------------------------------------------------------
    def network_parameters(self) -> dict[str, np.ndarray]:
        """Copies of the network's parameters (``asnumpy`` can share the parameter's memory)."""
        return {p.name: p.asnumpy().copy() for p in self.net.get_parameters()}

    def save(self, path: Path, progress: dict) -> None:
        entries = [{"name": p.name, "data": p} for p in self.net.get_parameters()]
        if self._train_cell is not None:
            # The optimizer's slots and step, the learning rate, the loss scale and its counters.
            seen = {e["name"] for e in entries}
            entries += [{"name": p.name, "data": p} for p in self._train_cell.get_parameters() if p.name not in seen]
        meta = {"format": CHECKPOINT_FORMAT, "version": "1", "config": json.dumps(self.cfg.to_dict()),
                "progress": json.dumps(progress)}
        write_ckpt(path, entries, meta)

    def _check_and_load(self, path: Path | str, network: dict[str, np.ndarray]) -> None:
        from .convert import normalize_mindspore_names

        network = normalize_mindspore_names(network, self.cfg)
        own = {p.name: p for p in self.net.get_parameters()}
        check_parameter_shapes(str(path), {k: tuple(v.shape) for k, v in own.items()},
                               {k: tuple(v.shape) for k, v in network.items()})
        for name, param in own.items():
            param.set_data(self.ms.Tensor(np.asarray(network[name]), dtype=param.dtype))

    def _read_any(self, path: Path) -> tuple[dict[str, np.ndarray], dict, dict]:
        """(network, training state, metadata) of a .ckpt, or of a PyTorch .pt converted."""
        if Path(path).suffix == ".pt":
            from .convert import read_torch_checkpoint

            network, progress = read_torch_checkpoint(path, self.cfg)
            return network, {}, {"progress": progress}
        params = read_ckpt(path)
        network, state, meta = split_checkpoint(params)
        if "progress" in meta:
            meta["progress"] = json.loads(meta["progress"])
        return network, state, meta

    def load(self, path: Path, training_state: bool = True) -> dict:
        network, state, meta = self._read_any(Path(path))
        self._check_and_load(Path(path), network)
        if training_state and state:
            params = {p.name: p for p in self._ensure_train_cell().get_parameters()}
            for name, value in state.items():
                if name in params and tuple(params[name].shape) == tuple(value.shape):
                    params[name].set_data(self.ms.Tensor(np.asarray(value), dtype=params[name].dtype))
            self._lr = float(params["learning_rate"].asnumpy())
        return meta.get("progress") or {}

    def load_pretrained(self, path: Path) -> None:
        network, _, _ = self._read_any(Path(path))
        self._check_and_load(Path(path), network)

    # -- export -----------------------------------------------------------------
    def export(self, path: Path, fmt: str, example: Batch, int8: bool = False) -> dict:
        from .export import export_mindir, export_onnx

        self.net.set_train(False)
        if fmt == "mindir":
            if int8:
                raise ValueError("int8 quantization is for ONNX exports, not 'mindir'")
            return export_mindir(self, Path(path), example)
        if fmt == "onnx":
            return export_onnx(self, Path(path), example, int8)
        raise ValueError(f"the mindspore backend exports 'mindir' or 'onnx', not {fmt!r}")


def write_ckpt(path: str | Path, entries: list[dict], meta: dict[str, str]) -> None:
    """Write ``entries`` ({"name", "data"}) and ``meta`` strings atomically to a .ckpt."""
    import mindspore as ms

    data = [{"name": e["name"], "data": e["data"] if isinstance(e["data"], ms.Tensor) else ms.Tensor(e["data"])}
            for e in entries]
    # MindSpore writes 0o400; checkpoints are replaced, pruned and copied like .pt files.
    with atomic_output(path, ".ckpt", mode=0o644) as tmp:
        ms.save_checkpoint(data, str(tmp), append_dict={META_PREFIX + k: v for k, v in meta.items()})


def official_config_note(path: str | Path) -> None:
    print(f"{path}: no deepspeech2 config inside (an official checkpoint?); using configs/mindspore_official.yaml",
          file=sys.stderr)
