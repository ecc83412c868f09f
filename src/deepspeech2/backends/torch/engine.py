"""PyTorch backend: train step, inference, checkpoints and ONNX export."""

from __future__ import annotations

import contextlib
import datetime
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ...atomic import atomic_output
from ...config import Config
from ...data.dataset import Batch
from ...safe_load import ModelFileError, load_torch_file
from ...text import Alphabet
from ..common import check_parameter_shapes, frozen_parameters, optimizer_choice
from .model import DeepSpeech2, count_parameters

CHECKPOINT_FORMAT = "deepspeech2-torch"


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) otherwise."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # one GPU per process under torchrun
        name = f"cuda:{local_rank}"
    return torch.device(name)


def load_checkpoint_file(path: str | Path) -> dict:
    """Read a .pt checkpoint without executing code (safe_load: weights_only, errors naming the file)."""
    ckpt = load_torch_file(path, "PyTorch checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a deepspeech2 PyTorch checkpoint (no format tag {CHECKPOINT_FORMAT!r})")
    return ckpt


def check_state_dict(path: str, model: nn.Module, state: dict) -> None:
    check_parameter_shapes(path, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                           {k: tuple(v.shape) for k, v in state.items()})


class TorchBackend:
    name = "torch"
    checkpoint_suffix = ".pt"

    def __init__(self, cfg: Config, device: str | None = None):
        self.cfg = cfg
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.rank, self.world_size, local_rank = distributed_env()
        self.device = pick_device(device or cfg.train.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # cuDNN picks the fastest RNN/conv kernels per shape
        if self.world_size > 1 and not dist.is_initialized():
            # Rank 0 fills the feature cache and evaluates while the others wait: allow hours.
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo",
                                    timeout=datetime.timedelta(hours=6))
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
        self.alphabet = Alphabet(cfg.text.blank)
        self.model = DeepSpeech2(cfg.model, cfg.audio.num_bins, len(self.alphabet)).to(self.device)
        self.net: nn.Module = self._wrap()
        self.ctc = nn.CTCLoss(blank=self.alphabet.blank_id, reduction="sum", zero_infinity=True)
        self.optimizer: torch.optim.Optimizer | None = None
        # fp16 gradients need loss scaling on any device (CPU autocast runs fp16 too); a step whose
        # scaled gradients overflow is skipped and the scale halved (train_step returns None).
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")

    def _wrap(self) -> nn.Module:
        """The module the train step runs: the model, or DDP around it under torchrun."""
        if self.world_size == 1:
            return self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (e.g. the dev metrics only rank 0 computes)."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # -- training ---------------------------------------------------------------
    def _build_optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        kind, options = optimizer_choice(t)
        optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
        return optimizers[kind](params, lr=t.lr, **options)

    def freeze(self, prefixes: list[str]) -> list[str]:
        """Keep parameters whose names start with one of ``prefixes`` fixed."""
        frozen = frozen_parameters([n for n, _ in self.model.named_parameters()], prefixes)
        for n, p in self.model.named_parameters():
            if n in frozen:
                p.requires_grad_(False)
        self.optimizer = None
        self.net = self._wrap()  # DDP must see which parameters take gradients
        return frozen

    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def set_lr(self, lr: float) -> None:
        if self.optimizer is None:
            self.optimizer = self._build_optimizer()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.cfg.train.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _tensors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        pin = self.device.type == "cuda"
        features = torch.from_numpy(batch.features)
        if pin:
            features = features.pin_memory()
        return (features.to(self.device, non_blocking=pin),
                torch.from_numpy(batch.feature_lengths).to(self.device))

    def train_step(self, batch: Batch) -> float | None:
        if self.optimizer is None:
            self.optimizer = self._build_optimizer()
        self.net.train()
        features, lengths = self._tensors(batch)
        with self._autocast():
            log_probs, out_lengths = self.net(features, lengths)
        loss = self.ctc(log_probs.transpose(0, 1), torch.from_numpy(batch.targets).to(self.device),
                        out_lengths, torch.from_numpy(batch.target_lengths).to(self.device)) / len(batch)
        finite = torch.isfinite(loss.detach()).float()
        if self.world_size > 1:
            # Every rank must skip the same batches, or the gradient all-reduce would hang.
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.is_enabled() and self.scaler.get_scale() < scale:
            return None  # fp16 gradients overflowed: the scaler skipped this update
        loss = loss.detach()
        if self.world_size > 1:  # report the mean over the global batch, as one process would
            dist.all_reduce(loss)
            loss /= self.world_size
        return float(loss)

    def quantize_int8(self) -> None:
        """Inference with int8 dynamic quantization of the RNNs and the output layer (CPU):
        weights 4x smaller and about twice as fast at the official size; the WER change
        is measured in the README. The model can no longer train or be saved after this."""
        import warnings

        if self.device.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on the CPU (train.device=cpu)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            self.model = torch.ao.quantization.quantize_dynamic(
                self.model.eval(), {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
        self.net = self.model

    @torch.inference_mode()
    def log_probs(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        features, lengths = self._tensors(batch)
        with self._autocast():
            log_probs, out_lengths = self.model(features, lengths)
        return log_probs.float().cpu().numpy(), out_lengths.cpu().numpy()

    # -- checkpoints ------------------------------------------------------------
    def save(self, path: Path, progress: dict) -> None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "progress": progress,
        }
        # A failed write (a full disk) removes its temporary file and leaves ``path`` as it was.
        with atomic_output(path) as tmp:
            torch.save(state, tmp)

    def load(self, path: Path, training_state: bool = True) -> dict:
        ckpt = load_checkpoint_file(path)
        check_state_dict(str(path), self.model, ckpt["model"])
        self.model.load_state_dict(ckpt["model"])
        if training_state:
            if ckpt.get("optimizer") is not None:
                self.optimizer = self._build_optimizer()
                self.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            if "cuda" in ckpt["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        return ckpt.get("progress") or {}

    def load_pretrained(self, path: Path) -> None:
        ckpt = load_checkpoint_file(path)
        check_state_dict(str(path), self.model, ckpt["model"])
        self.model.load_state_dict(ckpt["model"])

    # -- export -----------------------------------------------------------------
    def export(self, path: Path, fmt: str, example: Batch, int8: bool = False) -> dict:
        from ...onnx_contract import config_metadata
        from .export import export_onnx

        if fmt != "onnx":
            raise ValueError(f"the torch backend exports 'onnx', not {fmt!r}")
        return export_onnx(self.model, path, example, config_metadata(self.cfg.to_dict()), int8=int8)
