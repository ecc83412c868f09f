"""Does on-the-fly augmentation keep ahead of the training step?

Times, side by side on the same batches of real speech (speechocean762 train), what one data
worker thread needs to build an augmented batch with a config's ``augment.*`` settings
(decode, waveform effects, spectrogram, SpecAugment) and what the model needs for one
training step on it. The ratio step / build is how many batches one worker makes per step:
above 1 the workers keep ahead and augmentation costs the step nothing but the worker's CPU
share.

    .venv/bin/python benchmarks/augment_throughput.py --config english --batches 6
    # with every augmentation on, as measured for the README:
    .venv/bin/python benchmarks/augment_throughput.py --set augment.freq_masks=2 augment.time_masks=2 \
        augment.noise_prob=0.3 augment.reverb_prob=0.15 augment.telephone_prob=0.15
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from deepspeech2.audio import load_features
from deepspeech2.backends.base import create_backend
from deepspeech2.config import config_path, load_config
from deepspeech2.data.augment import Augmenter
from deepspeech2.data.dataset import Batch
from deepspeech2.text import Alphabet, normalize_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speechocean762"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="english")
    parser.add_argument("--root", default=str(SHARED), help="a speechocean762 copy with manifest.csv")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()

    cfg = load_config(config_path(args.config), [f"train.threads={args.threads}", *args.set])
    rows = [r for r in csv.DictReader(open(Path(args.root) / "manifest.csv")) if r["split"] == "train"]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(rows), size=args.batches * cfg.train.batch_size, replace=False)
    utts = [(str(Path(args.root) / rows[i]["path"]), normalize_text(rows[i]["transcript"])) for i in picks]
    spec = cfg.audio.feature_spec()
    cached = {path: load_features(path, spec).astype(np.float16) for path, _ in utts}
    augmenter = Augmenter(cfg.augment, spec, quiet=True)
    alphabet = Alphabet(cfg.text.blank)
    backend = create_backend(cfg, "cpu")
    backend.set_lr(cfg.train.lr)

    build_s, step_s, audio_s = [], [], 0.0
    for b in range(args.batches):
        chunk = utts[b * cfg.train.batch_size:(b + 1) * cfg.train.batch_size]
        started = time.perf_counter()
        feats = [augmenter.features(path, cached[path], rng) for path, _ in chunk]
        build_s.append(time.perf_counter() - started)
        audio_s += sum(f.shape[1] for f in feats) * cfg.audio.hop_length / cfg.audio.sample_rate
        labels = [alphabet.encode(text) for _, text in chunk]
        features = np.zeros((len(feats), feats[0].shape[0], max(f.shape[1] for f in feats)), np.float32)
        for row, f in zip(features, feats, strict=True):
            row[:, : f.shape[1]] = f
        targets = np.zeros((len(labels), max(len(x) for x in labels)), np.int64)
        for row, lab in zip(targets, labels, strict=True):
            row[: len(lab)] = lab
        batch = Batch(features, np.array([f.shape[1] for f in feats]), targets, np.array([len(x) for x in labels]),
                      [t for _, t in chunk], [p for p, _ in chunk])
        started = time.perf_counter()
        backend.train_step(batch)
        step_s.append(time.perf_counter() - started)
    build, step = float(np.median(build_s)), float(np.median(step_s[1:] or step_s))
    result = {"config": args.config, "batch_size": cfg.train.batch_size, "batches": args.batches,
              "audio_seconds": round(audio_s, 1), "build_s_median": round(build, 3), "step_s_median": round(step, 3),
              "batches_per_step_per_worker": round(step / build, 2), "workers": cfg.data.num_workers}
    print(json.dumps(result, indent=2))
    print(f"one worker builds an augmented batch in {build:.2f} s; a training step takes {step:.2f} s: "
          f"{step / build:.1f} batches per step per worker ({cfg.data.num_workers} workers) -> "
          f"{'the workers keep ahead' if step / build * cfg.data.num_workers > 1 else 'the step waits for data'}")


if __name__ == "__main__":
    main()
