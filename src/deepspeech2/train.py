"""The training loop, shared by every backend.

    train()        setup, then while epochs remain: run_epoch, end_of_epoch
    setup          backend, run folder, resume or pretrained weights, datasets, batch sampler
    run_epoch      for batch in length-bucketed batches: lr -> train_step -> log
                   -> checkpoint every N steps (stops at train.max_steps / max_minutes)
    end_of_epoch   dev WER/CER, metrics CSV + PNG, DeepSpeech-{epoch}_{step} / last / best
                   checkpoints, early stop

A checkpoint holds the model, optimizer, RNG and the loop's position (epoch, step
in the epoch), and the batch order of an epoch depends only on the seed and the
epoch, so ``--resume`` continues exactly where a killed run stopped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .atomic import atomic_output, atomic_write_text
from .backends.base import create_backend
from .checkpoints import read_config
from .config import Config, ConfigError, TrainConfig, save_config
from .data.augment import Augmenter
from .data.augment import enabled as augment_enabled
from .data.dataset import BucketBatchSampler, SkipReport, SpeechDataset, load_dataset, padding_fraction
from .data.features import FeatureCache, default_cache_dir
from .evaluate import decode_dataset, score
from .progress import bar

STEP_LOG = "steps.csv"
EPOCH_LOG = "metrics.csv"


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimizer steps done in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # over the current epoch
    loss_count: int = 0
    skipped_batches: int = 0  # non-finite losses, over the whole run
    best_wer: float = math.inf
    epochs_since_best: int = 0
    history: list[dict] = field(default_factory=list)
    global_batch_size: int = 0  # batch_size x processes, to resume with another process count
    train_seconds: float = 0.0  # wall-clock time spent training, over resumes (train.max_minutes)


def learning_rate(t: TrainConfig, epoch: int, step: int, steps_per_epoch: int, time_fraction: float = 0.0) -> float:
    """LR for ``step`` (0-based, in ``epoch``): official = constant for the first half of
    the epochs, then divided by ``lr_decay`` once per epoch; cosine = cosine decay to
    ``min_lr``; all with an optional linear warmup. ``time_fraction``: the share of
    ``train.max_minutes`` spent; the cosine follows it when it is ahead of the steps, so
    the decay ends when the time budget does."""
    global_step = epoch * steps_per_epoch + step
    if t.lr_schedule == "official":
        half = t.epochs // 2
        lr = t.lr if epoch < half else t.lr / t.lr_decay ** (epoch - half + 1)
    elif t.lr_schedule == "cosine":
        total = max(1, t.epochs * steps_per_epoch)
        fraction = min(1.0, max(global_step / total, time_fraction))
        lr = t.min_lr + (t.lr - t.min_lr) * 0.5 * (1 + math.cos(math.pi * fraction))
    else:
        lr = t.lr
    if t.warmup_steps and global_step < t.warmup_steps:
        lr *= (global_step + 1) / t.warmup_steps
    return lr


def _barrier(backend) -> None:
    """Wait for every data-parallel process (backends without data parallelism have none)."""
    if hasattr(backend, "barrier"):
        backend.barrier()


def _broadcast(backend, value):
    return backend.broadcast(value) if hasattr(backend, "broadcast") else value


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src`` (a hard link, or a copy where links are not possible), atomically."""
    with atomic_output(dst) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (the message says which, why, and what is left)."""


class Run:
    """The files of a run folder: checkpoints, logs, metrics and plots."""

    def __init__(self, out_dir: str | Path, suffix: str, keep: int):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.suffix, self.keep = suffix, keep

    @property
    def last(self) -> Path:
        return self.dir / f"last{self.suffix}"

    @property
    def best(self) -> Path:
        return self.dir / f"best{self.suffix}"

    def save(self, backend, progress: Progress, epoch: int, step: int, best: bool = False) -> Path:
        path = self.dir / f"DeepSpeech-{epoch}_{step}{self.suffix}"
        try:
            backend.save(path, asdict(progress))
            _link_or_copy(path, self.last)
            if best:
                _link_or_copy(path, self.best)
        except OSError as e:  # a full disk, a quota: every write is atomic, so nothing older was touched
            kept = (f"{self.last.name} (the checkpoint before) is intact" if self.last.exists()
                    else "no checkpoint had been written yet")
            raise CheckpointWriteError(f"{path}: could not write the checkpoint: {e.strerror or e}; {kept}. "
                                       f"Free some space, then continue with: ds2 train --resume {self.dir}") from e
        self._prune()
        return path

    def remove_stale_temporaries(self) -> int:
        """Delete the temporary files of writes a killed run left half done; return how many."""
        stale = [p for p in self.dir.glob(".*.tmp*") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        def order(path: Path) -> tuple[int, int]:
            epoch, _, step = path.name[len("DeepSpeech-"): -len(self.suffix)].partition("_")
            return (int(epoch), int(step)) if epoch.isdigit() and step.isdigit() else (-1, -1)

        numbered = sorted(self.dir.glob(f"DeepSpeech-*{self.suffix}"), key=order)
        for old in numbered[: -self.keep]:
            old.unlink(missing_ok=True)

    def append_steps(self, rows: list[tuple[int, int, int, float, float]]) -> None:
        path = self.dir / STEP_LOG
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["global_step", "epoch", "step", "loss", "lr"])
            writer.writerows(rows)

    def truncate_steps(self, global_step: int) -> None:
        """Drop step rows logged after the checkpoint a resumed run starts from."""
        path = self.dir / STEP_LOG
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        # A run killed mid-write may leave a torn last line: keep whole rows only.
        kept = [["global_step", "epoch", "step", "loss", "lr"]] + [
            r for r in rows[1:] if len(r) == 5 and r[0].isdigit() and int(r[0]) <= global_step]
        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        atomic_write_text(path, buf.getvalue())

    def write_epoch_metrics(self, history: list[dict]) -> None:
        if not history:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history[0].keys()))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.dir / EPOCH_LOG, buf.getvalue())
        atomic_write_text(self.dir / "metrics.json", json.dumps(history, indent=2) + "\n")
        steps = []
        if (self.dir / STEP_LOG).exists():
            with open(self.dir / STEP_LOG, newline="") as f:
                steps = [(int(r["global_step"]), float(r["loss"])) for r in csv.DictReader(f)
                         if r.get("loss") and r["global_step"].isdigit()]
        from .plots import plot_training

        plot_training(steps, history, self.dir / "training.png")


@dataclass
class Session:
    """What one training run holds while it runs (one per process under torchrun: each takes its
    slice of every global batch; rank 0 alone evaluates, logs and writes files)."""

    cfg: Config
    backend: Any
    run: Run
    progress: Progress
    train_set: SpeechDataset
    dev_set: SpeechDataset | None
    sampler: BucketBatchSampler
    resumed_sampler: BucketBatchSampler | None  # the interrupted epoch's batches, after a process-count change
    augmenter: Augmenter | None
    budget: Budget
    rank: int = 0
    world: int = 1

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    def log(self, *args, **kwargs) -> None:
        if self.main_process:
            print(*args, **kwargs)

    def batches(self, epoch: int, batches: list[list[int]], steps: range) -> Iterator:
        """This process's share of each step's batch, augmented (and then prefetched) when augmentation is on."""
        cfg, rank, world = self.cfg, self.rank, self.world

        def make_batch(step: int):
            indices = batches[step][rank::world]
            if self.augmenter is None:
                return self.train_set.batch(indices)
            # Seeded by position, so a resumed run augments as the interrupted one would have.
            rng = np.random.default_rng([cfg.train.seed, epoch, step, rank])
            return self.train_set.batch(indices, self.augmenter, rng, cfg.model.output_frames)

        if self.augmenter is None:
            return map(make_batch, steps)
        return prefetch(make_batch, steps, cfg.data.num_workers)


class Budget:
    """``train.max_minutes``: wall-clock training time, kept in ``progress.train_seconds`` across resumes."""

    def __init__(self, progress: Progress, minutes: float):
        self.progress, self.seconds, self.clock = progress, 60 * minutes, time.time()

    def spend(self) -> float:
        """Add the time since the last call to the run's training time; returns the budget share."""
        now = time.time()
        self.progress.train_seconds += now - self.clock
        self.clock = now
        return self.progress.train_seconds / self.seconds if self.seconds else 0.0


@dataclass
class EpochEnd:
    """How ``run_epoch`` ended."""

    epoch: int  # 0-based
    steps: int  # batches in the epoch
    lr: float  # the last step's learning rate
    started: float  # time.time() at the epoch's start
    out_of_time: bool = False  # train.max_minutes reached: the partial epoch is evaluated and saved
    stopped: bool = False  # train.max_steps reached inside the epoch: the run stops unfinished


def train(cfg: Config, out_dir: str | Path, resume: bool = False, pretrained: str | None = None,
          device: str | None = None) -> dict:
    """Train ``cfg`` into ``out_dir``; returns the last epoch's metrics."""
    s = setup(cfg, out_dir, resume, pretrained, device)
    t, progress = cfg.train, s.progress
    last_metrics: dict = progress.history[-1] if progress.history else {}
    out_of_time = bool(s.budget.seconds) and progress.train_seconds >= s.budget.seconds
    if out_of_time:
        s.log(f"train.max_minutes={t.max_minutes} already spent ({progress.train_seconds / 60:.1f} min); "
              "raise it to train longer")
    while progress.epoch < t.epochs and not out_of_time:
        end = run_epoch(s)
        if end.stopped:
            return {**last_metrics, "completed": False}
        out_of_time = end.out_of_time
        last_metrics, stop = end_of_epoch(s, end)
        if stop:
            break
    return last_metrics


def check_same_features(checkpoint: Path, cfg: Config) -> None:
    """A run resumes only with the features it was trained on: other ``audio.*`` settings give
    the network inputs it never saw (or of another height), so that is a ConfigError naming them."""
    before, now = asdict(read_config(checkpoint).audio), asdict(cfg.audio)
    changed = [key for key in before if before[key] != now[key]]
    if changed:
        differences = "; ".join(f"audio.{key} {before[key]!r} -> {now[key]!r}" for key in changed)
        own = " ".join(f"audio.{key}={before[key]}" for key in changed)
        raise ConfigError(f"{checkpoint} was trained with other features ({differences}). Resume it with its own "
                          f"settings ({own}, and the model.* it was trained with; `ds2 train --resume "
                          f"{checkpoint.parent}` reads them all from its config.yaml), or train into a new folder")


def setup(cfg: Config, out_dir: str | Path, resume: bool, pretrained: str | None, device: str | None) -> Session:
    """The backend (and its process group), the run folder, the state to start from (fresh, ``--resume``d
    or ``--pretrained``), the datasets and the batch sampler."""
    t = cfg.train
    if not cfg.data.train_manifest:
        raise ValueError("data.train_manifest is not set (give it in the config or as data.train_manifest=PATH)")
    backend = create_backend(cfg, device)
    rank, world = getattr(backend, "rank", 0), getattr(backend, "world_size", 1)
    main_process = rank == 0
    log = print if main_process else (lambda *a, **k: None)
    run = Run(out_dir, backend.checkpoint_suffix, t.keep_checkpoints)
    if main_process:
        run.remove_stale_temporaries()
    progress = Progress()
    if t.freeze:  # before a resume restores the optimizer, which holds only the trainable parameters
        frozen = backend.freeze(t.freeze)
        log(f"frozen {len(frozen)} parameter tensors: {', '.join(t.freeze)}")
    if resume:
        if not run.last.exists():
            raise FileNotFoundError(f"--resume: no {run.last.name} in {run.dir}")
        check_same_features(run.last, cfg)
        progress = Progress(**backend.load(run.last, training_state=True))
        log(f"resumed from {run.last} at epoch {progress.epoch + 1}, step {progress.step_in_epoch}")
    elif pretrained:
        backend.load_pretrained(Path(pretrained))
        log(f"initialised weights from {pretrained}")
    if main_process:
        # Step rows past the starting point are from a run killed after logging them: a resumed run
        # logs them again, and so does a fresh start in a folder whose killed run left no checkpoint.
        run.truncate_steps(progress.global_step)
        save_config(cfg, run.dir / "config.yaml")
    train_set, dev_set = _load_datasets(cfg, backend, run, main_process)

    global_batch = t.batch_size * world
    sampler = BucketBatchSampler(train_set.frames, global_batch, t.seed, t.sortagrad, min_size=world)
    steps_per_epoch = len(sampler)
    if steps_per_epoch == 0:
        raise ValueError(f"{cfg.data.train_manifest}: {len(train_set)} utterances are too few for {world} processes")
    resumed_sampler = None
    if progress.global_batch_size and progress.global_batch_size != global_batch and progress.step_in_epoch:
        # Another process count: the interrupted epoch ends with its own batches (each split
        # over the processes now running), so no utterance is seen twice or skipped; the
        # next epoch uses the new global batch.
        resumed_sampler = BucketBatchSampler(train_set.frames, progress.global_batch_size, t.seed, t.sortagrad,
                                             min_size=world)
        log(f"global batch {progress.global_batch_size} -> {global_batch} from the next epoch on")
    hours = sum(train_set.frames) * cfg.audio.hop_length / cfg.audio.sample_rate / 3600
    log(f"model: {backend.num_parameters():,} parameters ({cfg.model.rnn_layers}x{cfg.model.rnn_type} "
        f"{cfg.model.rnn_hidden}) on {backend.name}; train: {len(train_set)} utterances, {hours:.2f} h, "
        f"{steps_per_epoch} batches of {t.batch_size}{f' x {world} processes' if world > 1 else ''} "
        f"({100 * padding_fraction(sampler.batches, train_set.frames):.1f} % padding)")

    augmenter = None
    if augment_enabled(cfg.augment):
        augmenter = Augmenter(cfg.augment, cfg.audio.feature_spec(), quiet=not main_process)
        log(f"augmentation on: {_describe_augment(cfg)}")
    return Session(cfg, backend, run, progress, train_set, dev_set, sampler, resumed_sampler, augmenter,
                   Budget(progress, t.max_minutes), rank, world)


def _load_datasets(cfg: Config, backend, run: Run, main_process: bool) -> tuple[SpeechDataset, SpeechDataset | None]:
    """The training and dev sets; rank 0 fills the feature cache while the other processes wait."""
    cache = FeatureCache(default_cache_dir(cfg), cfg.audio.feature_spec())
    report = SkipReport(quiet=not main_process)
    if not main_process:
        _barrier(backend)  # rank 0 fills the feature cache first
    train_set = load_dataset(cfg.data.train_manifest, cfg, cache, report, training=True)
    dev_set = load_dataset(cfg.data.dev_manifest, cfg, cache, report) if cfg.data.dev_manifest else None
    if main_process:
        _barrier(backend)
        report.write(run.dir / "skipped.jsonl")
        if report.items:
            print(f"{len(report.items)} utterances skipped: see {run.dir / 'skipped.jsonl'}")
    return train_set, dev_set


def run_epoch(s: Session) -> EpochEnd:
    """The optimizer steps of the current epoch, from where it stands (a resumed run mid-epoch),
    with step logs and the periodic checkpoints; stops early at train.max_steps or train.max_minutes."""
    t, progress, backend, run = s.cfg.train, s.progress, s.backend, s.run
    epoch = progress.epoch
    sampler = s.resumed_sampler if s.resumed_sampler is not None and progress.step_in_epoch else s.sampler
    batches = sampler.epoch(epoch)
    steps_per_epoch = len(batches)
    progress.global_batch_size = sampler.batch_size
    started = time.time()
    pbar = bar(total=steps_per_epoch, initial=progress.step_in_epoch, desc=f"epoch {epoch + 1}/{t.epochs}",
               unit="batch", disable=not s.main_process)
    pending: list[tuple[int, int, int, float, float]] = []  # step rows not yet in steps.csv
    lr = learning_rate(t, epoch, progress.step_in_epoch, steps_per_epoch, s.budget.spend())
    steps = range(progress.step_in_epoch, steps_per_epoch)
    batch_iter = s.batches(epoch, batches, steps)
    out_of_time = False
    for step, batch in zip(steps, batch_iter, strict=False):
        lr = learning_rate(t, epoch, step, steps_per_epoch, s.budget.spend())
        backend.set_lr(lr)
        loss = backend.train_step(batch)
        progress.step_in_epoch = step + 1
        progress.global_step += 1
        if loss is None:
            progress.skipped_batches += 1
            if s.main_process:
                tqdm.write(f"epoch: {epoch + 1} step: {step + 1}, loss is not finite: batch skipped "
                           f"({progress.skipped_batches} so far)")
        else:
            progress.loss_sum += loss
            progress.loss_count += 1
            pending.append((progress.global_step, epoch + 1, step + 1, round(loss, 4), lr))
            if s.main_process and ((step + 1) % t.log_every == 0 or step == 0):
                tqdm.write(f"epoch: {epoch + 1} step: {step + 1}, loss is {loss:.2f}")
            pbar.set_postfix(loss=f"{loss:.2f}", lr=f"{lr:.2e}")
        pbar.update()
        at_limit = t.max_steps and progress.global_step >= t.max_steps
        out_of_time = bool(s.budget.seconds) and _broadcast(backend, s.budget.spend() >= 1.0)
        if out_of_time:
            # The budget ends the training: this partial epoch is evaluated and saved by end_of_epoch.
            s.log(f"\ntrain.max_minutes={t.max_minutes} reached at epoch {epoch + 1}, step {step + 1}")
            break
        if s.main_process and ((t.checkpoint_every and progress.global_step % t.checkpoint_every == 0) or at_limit):
            run.append_steps(pending)
            pending = []
            if step + 1 < steps_per_epoch:
                run.save(backend, progress, epoch + 1, step + 1)
        if at_limit and step + 1 < steps_per_epoch:
            pbar.close()
            s.log(f"stopped at train.max_steps={t.max_steps}; continue with --resume {run.dir}")
            _barrier(backend)
            return EpochEnd(epoch, steps_per_epoch, lr, started, out_of_time, stopped=True)
    pbar.close()
    if isinstance(batch_iter, Prefetcher):
        batch_iter.close()
        s.log(f"data: the training step waited {batch_iter.waited:.1f} s for augmented batches in "
              f"{time.time() - started:.0f} s of epoch {epoch + 1}")
    if s.main_process:
        run.append_steps(pending)
    return EpochEnd(epoch, steps_per_epoch, lr, started, out_of_time)


def end_of_epoch(s: Session, end: EpochEnd) -> tuple[dict, bool]:
    """Dev WER/CER, the epoch's checkpoint (``best`` when the dev WER improved), metrics CSV/JSON and
    plot; returns the epoch's metrics and whether training stops (train.max_steps, early stopping)."""
    t, progress, backend, dev_set = s.cfg.train, s.progress, s.backend, s.dev_set
    epoch = end.epoch
    partial = progress.step_in_epoch < end.steps
    metrics = {"epoch": epoch + 1, "global_step": progress.global_step, "lr": end.lr,
               "train_loss": progress.loss_sum / max(progress.loss_count, 1),
               "dev_wer": None, "dev_cer": None, "seconds": round(time.time() - end.started, 1),
               "skipped_batches": progress.skipped_batches}
    if dev_set is not None and s.main_process:
        hypotheses = decode_dataset(backend, dev_set, t.eval_batch_size, desc="dev")
        rates, _ = score([u.text for u in dev_set.utterances], hypotheses)
        metrics["dev_wer"], metrics["dev_cer"] = rates.wer, rates.cer
        example = next((i for i, h in enumerate(hypotheses) if h), 0)
        print(f"  dev example  Ref: {dev_set.utterances[example].text.lower()}\n"
              f"               Hyp: {hypotheses[example].lower()}")
    metrics = _broadcast(backend, metrics)
    improved = metrics["dev_wer"] is not None and metrics["dev_wer"] < progress.best_wer
    if improved:
        progress.best_wer, progress.epochs_since_best = metrics["dev_wer"], 0
    elif dev_set is not None:
        progress.epochs_since_best += 1
    progress.history.append(metrics)
    if not partial:
        progress.epoch += 1
        progress.step_in_epoch, progress.loss_sum, progress.loss_count = 0, 0.0, 0
    s.budget.spend()
    if s.main_process:
        path = s.run.save(backend, progress, epoch + 1, progress.step_in_epoch or end.steps,
                          best=improved or dev_set is None)
        s.run.write_epoch_metrics(progress.history)
        dev = (f", dev WER {100 * metrics['dev_wer']:.2f} % CER {100 * metrics['dev_cer']:.2f} %"
               if dev_set is not None else "")
        s.log(f"epoch {epoch + 1}: train loss {metrics['train_loss']:.3f}{dev}, {metrics['seconds']:.0f} s "
              f"-> {path.name}")
    _barrier(backend)
    last_metrics = {**metrics, "completed": progress.epoch >= t.epochs or end.out_of_time,
                    "out_of_time": end.out_of_time}
    if t.max_steps and progress.global_step >= t.max_steps:
        s.log(f"stopped at train.max_steps={t.max_steps}")
        return last_metrics, True
    if dev_set is not None and t.early_stopping and progress.epochs_since_best >= t.early_stopping:
        s.log(f"early stopping: dev WER has not improved for {t.early_stopping} epochs")
        last_metrics["completed"] = True
        return last_metrics, True
    return last_metrics, False


class Prefetcher:
    """``make(step)`` for each step, computed ``depth`` steps ahead by ``workers`` threads
    (decoding, soxr and numpy release the GIL), yielded in order. ``waited``: seconds the
    consumer spent blocked on a batch that was not ready, i.e. what data loading cost the
    training step (0 when the workers keep ahead of the model)."""

    def __init__(self, make: Callable[[int], Any], steps: range, workers: int, depth: int = 0):
        workers = max(1, workers)
        self.depth = depth or 2 * workers
        self.make, self.todo = make, iter(steps)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="ds2-batches")
        self.futures: deque = deque()
        self.waited = 0.0
        for step in self.todo:
            self.futures.append(self.pool.submit(make, step))
            if len(self.futures) >= self.depth:
                break

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if not self.futures:
            self.close()
            raise StopIteration
        future = self.futures.popleft()
        started = time.perf_counter()
        result = future.result()
        self.waited += time.perf_counter() - started
        next_step = next(self.todo, None)
        if next_step is not None:
            self.futures.append(self.pool.submit(self.make, next_step))
        return result

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def prefetch(make: Callable[[int], Any], steps: range, workers: int, depth: int = 0) -> Prefetcher:
    return Prefetcher(make, steps, workers, depth)


def _describe_augment(cfg: Config) -> str:
    a = cfg.augment
    parts = []
    if a.freq_masks or a.time_masks:
        parts.append(f"SpecAugment {a.freq_masks} x {a.freq_width} bins, {a.time_masks} x {a.time_width:.0%}")
    if a.vtlp_prob:
        parts.append(f"VTLP {a.vtlp_prob:.0%} ({a.vtlp_alpha[0]}-{a.vtlp_alpha[1]})")
    if a.wave_prob:
        wave = [f"speed {'/'.join(str(s) for s in a.speed)}"] if any(s != 1.0 for s in a.speed) else []
        wave += [f"{name} {p:.0%}" for name, p in (("noise", a.noise_prob), ("reverb", a.reverb_prob),
                                                    ("telephone", a.telephone_prob)) if p]
        if a.gain_db or a.dc_offset:
            wave.append(f"gain +-{a.gain_db} dB, DC +-{a.dc_offset}")
        parts.append(f"waveform effects on {a.wave_prob:.0%} of utterances ({', '.join(wave)})")
    return "; ".join(parts)

