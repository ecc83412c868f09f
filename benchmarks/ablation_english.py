"""What each ingredient of the english recipe buys, measured on real speech.

Trains one model per variant, one after the other, with equal compute: the same
architecture, the same number of training utterances per epoch (a variant without the real
sets draws as many synthetic utterances instead), the same epochs, steps and seed. Each
model is then scored with greedy decoding on the real sets (speechocean762 test: unseen
non-native speakers; FSDD test; the Asterisk prompts when installed) and on the synthetic
test set. Variants:

    full            the english recipe's data mix with every augmentation on, lightly (AUGMENTED:
                    the recipe's own setting until it turned SpecAugment, noise, reverberation
                    and the telephone channel off on this ablation's evidence)
    no-real         synthetic speech only: no speechocean762, AN4 or FSDD in training
    no-specaugment  augment.freq_masks=0, augment.time_masks=0
    no-speed        augment.speed=[1.0]
    no-noise        augment.noise_prob=0
    no-augment      every augment.* off
    full-seed2      full again with another seed (initialisation, order, augmentation draws):
                    differences smaller than the spread between the two are noise

The default model is the english recipe's network with 256-wide LSTMs (the mini model's
width) trained for one epoch, so the whole ablation takes about an hour on 2 CPU cores;
``--set`` changes it (e.g. ``--set model.rnn_hidden=512 train.epochs=3`` for the recipe's
own size). Writes ``ablation.csv``, ``ablation.json`` and ``ablation.png`` to ``--out``;
a rerun skips the variants already trained and scored.

    .venv/bin/python benchmarks/ablation_english.py --prepared runs/english --out runs/ablation
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import time
from pathlib import Path

from deepspeech2.atomic import atomic_write_text
from deepspeech2.config import config_path, load_config
from deepspeech2.data.english import prepare_english
from deepspeech2.data.formats import read_any_manifest
from deepspeech2.data.manifest import write_manifest
from deepspeech2.evaluate import evaluate_checkpoint
from deepspeech2.plots import plot_grouped_bars
from deepspeech2.train import train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OFF = {"freq_masks": 0, "time_masks": 0, "vtlp_prob": 0.0, "wave_prob": 0.0, "speed": [1.0], "noise_prob": 0.0,
       "reverb_prob": 0.0, "telephone_prob": 0.0, "gain_db": 0.0, "dc_offset": 0.0}
# The augmented baseline every variant starts from, whatever configs/english.yaml turns on now:
# SpecAugment 2 x 15 bins and 2 x 5 %, VTLP, speed, noise, reverberation and the telephone channel.
AUGMENTED = {"freq_masks": 2, "freq_width": 15, "time_masks": 2, "time_width": 0.05, "vtlp_prob": 0.5,
             "wave_prob": 0.5, "speed": [0.9, 1.0, 1.1], "noise_prob": 0.3, "noise_snr": [10.0, 30.0],
             "reverb_prob": 0.15, "reverb_rt60": [0.2, 0.6], "telephone_prob": 0.15, "gain_db": 6.0,
             "dc_offset": 0.01}
# The features and front end its published figures were measured with (the recipe turned
# per-bin normalisation and log-mel features on later).
BASELINE_FEATURES = ["audio.normalize_per_bin=false", "audio.n_mels=0", "audio.n_fft=320",
                     "model.conv_kernels=[[41, 11], [11, 5]]"]


def augment_overrides(settings: dict) -> list[str]:
    return [f"augment.{key}={json.dumps(value)}" for key, value in settings.items()]


VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no-real": [],  # the training manifest changes, not the config
    "no-specaugment": ["augment.freq_masks=0", "augment.time_masks=0"],
    "no-speed": ["augment.speed=[1.0]"],
    "no-noise": ["augment.noise_prob=0"],
    "no-augment": augment_overrides(OFF),
    "full-seed2": ["train.seed=2"],  # the spread between two seeds: smaller differences are noise
}


def variant_overrides(name: str, extra: list[str] | None = None) -> list[str]:
    """The config overrides of variant ``name``: the baseline (features, augmentation), the user's ``extra``
    (``--set``), then what the variant changes."""
    return BASELINE_FEATURES + augment_overrides(AUGMENTED) + list(extra or []) + VARIANTS[name]


# The sets each variant is scored on; real speech first.
EVAL_SETS = ("speechocean762-test", "fsdd-test", "asterisk", "synthetic-test")
REAL_SETS = ("speechocean762", "an4", "fsdd")


def synthetic_only(train_manifest: Path, manifests: Path, out: Path, seed: int) -> Path:
    """The training manifest without its real utterances, topped up with synthetic ones drawn
    again (each draw is augmented differently) to the same number of utterances."""
    real = {u.path for name in REAL_SETS for u in read_any_manifest(manifests / name / "train.jsonl")}
    everything = read_any_manifest(train_manifest)
    synthetic = [u for u in everything if u.path not in real]
    if not synthetic:
        raise SystemExit(f"{train_manifest}: no synthetic utterances to train the no-real variant on")
    rng = random.Random(seed)
    extra = [rng.choice(synthetic) for _ in range(len(everything) - len(synthetic))]
    return write_manifest(out, synthetic + extra)


def run_variant(name: str, paths: dict[str, Path], prepared: Path, out: Path, overrides: list[str],
                limit: int) -> dict:
    folder = out / name
    record = folder / "result.json"
    if record.exists():
        print(f"{name}: already done ({record})")
        return json.loads(record.read_text())
    train_manifest = paths["train"]
    if name == "no-real":
        train_manifest = synthetic_only(train_manifest, prepared / "manifests", folder / "train.jsonl",
                                        seed=0)
    cfg = load_config(config_path("english"), [
        f"data.train_manifest={train_manifest}", f"data.dev_manifest={paths['dev']}",
        f"data.cache_dir={prepared / 'features'}", "model.rnn_hidden=256", "train.epochs=1",
        "train.max_minutes=0", "train.lr=2e-3", *variant_overrides(name, overrides)])
    started = time.time()
    train_dir = folder / "train"
    metrics = train(cfg, train_dir, resume=(train_dir / "last.pt").exists())
    train_seconds = time.time() - started
    checkpoint = train_dir / "best.pt" if (train_dir / "best.pt").exists() else train_dir / "last.pt"
    scores = {}
    for split in EVAL_SETS:
        if split not in paths:
            continue
        manifest = paths[split]
        if limit:  # an evenly spaced subset keeps every speaker of a sorted manifest
            utts = read_any_manifest(manifest)
            manifest = write_manifest(folder / f"{split}.jsonl", utts[::max(1, len(utts) // limit)][:limit])
        result = evaluate_checkpoint(checkpoint, manifest, folder / split, cfg.data.cache_dir, name=f"{name} {split}",
                                     verbose=False)
        scores[split] = {"wer": result["wer"], "cer": result["cer"], "utterances": result["num_utterances"]}
    result = {"variant": name, "overrides": VARIANTS[name] + overrides, "train_seconds": round(train_seconds, 1),
              "steps": metrics.get("global_step"), "dev_wer": metrics.get("dev_wer"), "scores": scores}
    atomic_write_text(record, json.dumps(result, indent=2) + "\n")
    return result


def write_report(results: list[dict], out: Path) -> None:
    sets = [s for s in EVAL_SETS if any(s in r["scores"] for r in results)]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["variant", "train_seconds", *[f"{s} {m}" for s in sets for m in ("wer", "cer")]])
    for r in results:
        writer.writerow([r["variant"], r["train_seconds"], *[
            f"{100 * r['scores'][s][m]:.2f}" if s in r["scores"] else "" for s in sets for m in ("wer", "cer")]])
    atomic_write_text(out / "ablation.csv", table.getvalue())
    atomic_write_text(out / "ablation.json", json.dumps(results, indent=2) + "\n")
    print("\n| variant | " + " | ".join(f"{s} WER / CER" for s in sets) + " | training |")
    print("|---" * (len(sets) + 2) + "|")
    for r in results:
        cells = [f"{100 * r['scores'][s]['wer']:.2f} / {100 * r['scores'][s]['cer']:.2f}" if s in r["scores"]
                 else "-" for s in sets]
        print(f"| {r['variant']} | " + " | ".join(cells) + f" | {r['train_seconds'] / 60:.1f} min |")
    plot_grouped_bars(sets, {r["variant"]: [100 * r["scores"].get(s, {}).get("cer", float("nan")) for s in sets]
                             for r in results}, "CER % (greedy)",
                      "english recipe ablation: what each ingredient buys", out / "ablation.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default="runs/english",
                        help="the english recipe's run folder (its data is prepared there when missing)")
    parser.add_argument("--data", default=str(SHARED), help="the shared real corpora (as ../shared/data)")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--limit", type=int, default=600, help="utterances per evaluation set (0: all)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every variant")
    args = parser.parse_args()

    prepared, out = Path(args.prepared), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = prepare_english(prepared, args.data)
    results = [run_variant(name, paths, prepared, out, args.set, args.limit) for name in args.variants]
    write_report(results, out)


if __name__ == "__main__":
    main()
