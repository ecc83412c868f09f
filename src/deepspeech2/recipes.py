"""Recipes: a corpus's stages in order (prepare, train, evaluate, export, transcribe).

Each stage leaves files in the run folder and is skipped when they exist, so running a
recipe again picks up where it stopped (an interrupted training is resumed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_text
from .config import config_path, load_config
from .data.download import DownloadError
from .data.formats import read_any_manifest
from .data.manifest import write_manifest
from .evaluate import evaluate_checkpoint
from .export import export_checkpoint


@dataclass
class Manifests:
    train: Path
    dev: Path
    tests: dict[str, Path] = field(default_factory=dict)
    config: str | None = None  # the config the data calls for, when it is not the recipe's
    int8: bool = False  # also export an int8 ONNX model (model.int8.onnx)
    lm: str | None = None  # "build": an LM from the training text; "librispeech": OpenSLR's (ds2 lm download)


def _prepare_mini(out: Path, data: str | None, options: dict) -> Manifests:
    from .data.mini import build_mini_corpus

    paths = build_mini_corpus(out / "corpus", text_file=data, **options)
    tests = {"test": paths["test"], "test-unseen-voice": paths["test-unseen-voice"]}
    return Manifests(paths["train"], paths["dev"], tests, lm="build")


def _prepare_fsdd(out: Path, data: str | None, options: dict) -> Manifests:
    from .data.fsdd import build_fsdd_manifests

    if not data:
        raise SystemExit("recipe fsdd needs --data DIR: a local copy of the Free Spoken Digit Dataset")
    paths = build_fsdd_manifests(data, out / "manifests")
    return Manifests(paths["train"], paths["dev"], {"test": paths["test"]})


def _prepare_librispeech(out: Path, data: str | None, options: dict) -> Manifests:
    """Options: subsets, base_url, checksums, wav, jobs, download (see prepare_librispeech)."""
    from .data.librispeech import EVAL_SUBSETS, parse_subsets, prepare_librispeech

    if not data:
        raise SystemExit("recipe librispeech needs --root DIR: where LibriSpeech is (or is to be) downloaded")
    subsets = parse_subsets(options.get("subsets"))
    train = [s for s in subsets if s.startswith("train-")]
    evals = [s for s in subsets if s not in train]
    if not train or not evals:
        raise SystemExit(f"recipe librispeech needs a training subset and a dev/test subset, got {', '.join(subsets)}")
    results = prepare_librispeech(data, subsets, options.get("base_url"), options.get("checksums"),
                                  wav=bool(options.get("wav")), jobs=options.get("jobs"),
                                  download=options.get("download", True))
    if len(train) == 1:
        train_manifest = results[train[0]].manifest
    else:  # train-960: the training subsets in one manifest
        train_manifest = write_manifest(out / "manifests" / "train.jsonl",
                                        [u for s in train for u in read_any_manifest(results[s].manifest)])
    dev = next((s for s in EVAL_SUBSETS if s in evals and s.startswith("dev-")), evals[0])
    big = any(s in ("train-clean-360", "train-other-500") for s in train)
    return Manifests(train_manifest, results[dev].manifest, {s: results[s].manifest for s in evals},
                     config="librispeech960" if big else "librispeech100", lm="librispeech")


def _prepare_english(out: Path, data: str | None, options: dict) -> Manifests:
    """Options: see ``data.english.prepare_english`` (sizes of the synthetic corpus)."""
    from .data.english import prepare_english

    paths = prepare_english(out, data or "../shared/data", **options)
    return Manifests(paths.pop("train"), paths.pop("dev"), paths, int8=True, lm="build")


RECIPES: dict[str, tuple[str, Callable[[Path, str | None, dict], Manifests]]] = {
    "mini": ("mini", _prepare_mini),
    "fsdd": ("fsdd", _prepare_fsdd),
    "librispeech": ("librispeech100", _prepare_librispeech),
    "english": ("english", _prepare_english),
}


# The recipes' LM: a character 6-gram (lexicon-free decoding; flashlight-text's KenLM loads up to 6-grams);
# the beam widths tried after alpha and beta.
LM_ORDER = 6
TUNE_WIDTHS = (16, 32, 64)


def default_lm_text() -> Path:
    """The shared English sentences (LJ Speech's transcripts) the mini recipe's LM adds to its
    training sentences; ``$DS2_SHARED_DATA`` overrides the shared data folder."""
    shared = os.environ.get("DS2_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(shared) / "text" / "ljspeech_sentences.txt"


def _newer(path: Path, *than: Path) -> bool:
    return path.exists() and all(path.stat().st_mtime >= p.stat().st_mtime for p in than)


def _recipe_lm(out: Path, manifests: Manifests, options: dict) -> Path:
    """The recipe's LM: OpenSLR's pruned 3-gram (librispeech), or a character 6-gram built from
    the training sentences plus ``lm_text`` files, without any dev or test sentence."""
    from .lm import build_lm, download_librispeech_lm

    if manifests.lm == "librispeech":
        name = "3-gram.pruned.1e-7.arpa.gz"
        return download_librispeech_lm(Path(options["root"]) / "lm", [name])[name]
    texts = [str(Path(t).resolve()) for t in options.get("lm_text") or []]
    if not texts and default_lm_text().is_file():
        texts = [str(default_lm_text())]
    exclude = {u.text for m in [manifests.dev, *manifests.tests.values()] for u in read_any_manifest(m)}
    train_sentences = [u.text for u in read_any_manifest(manifests.train)]
    lm_path, record = out / "lm" / "lm.arpa", out / "lm" / "lm.json"
    settings = {"texts": texts, "training_sentences": len(train_sentences), "unit": "char", "order": LM_ORDER,
                "excluded_sentences": len(exclude)}
    if lm_path.exists() and record.exists() and json.loads(record.read_text()).get("settings") == settings:
        print(f"LM: {lm_path} (already built)")
        return lm_path
    if not texts:
        print(f"LM: {default_lm_text()} not found; the LM is built from the training sentences only")
    report = build_lm(texts, lm_path, order=LM_ORDER, unit="char", exclude=exclude,
                      extra_sentences=train_sentences, binary=False)
    atomic_write_text(record, json.dumps({"settings": settings, "report": report}, indent=2) + "\n")
    print(f"LM: {lm_path}: character {LM_ORDER}-gram of {report['sentences']:,} sentences "
          f"({len(train_sentences):,} training, the rest from {', '.join(texts) or 'nothing'}; "
          f"{report['excluded_lines']} dev/test sentences left out)")
    return lm_path


def _decode_with_lm(out: Path, manifests: Manifests, checkpoint: Path, cfg, options: dict) -> tuple:
    """Build (or download) and tune the recipe's LM unless a decoder was given, then evaluate the
    test sets with it: (the DecoderConfig, {split: results}), the results in ``<split>-lm/``."""
    from .decoding import load_decoder_config
    from .tuning import tune_model

    decoder = options.get("decoder")
    if decoder is None:
        lm_path = _recipe_lm(out, manifests, options)
        decoder_path = out / "lm" / "decoder.yaml"
        if _newer(decoder_path, checkpoint, lm_path):
            print(f"decoder: {decoder_path} (already tuned)")
        else:
            tune_model(manifests.dev, lm_path, out / "lm", checkpoint=str(checkpoint), cache_dir=cfg.data.cache_dir,
                       widths=TUNE_WIDTHS)
        decoder = load_decoder_config(decoder_path)
    results = {}
    for split, manifest in manifests.tests.items():
        results_file = out / f"{split}-lm" / "results.json"
        if results_file.exists() and results_file.stat().st_mtime > checkpoint.stat().st_mtime:
            saved = json.loads(results_file.read_text())
            if saved.get("decoder") == decoder.to_dict():
                results[split] = saved
                print(f"{split}: already evaluated with the LM, WER {100 * saved['wer']:.2f} %")
                continue
        results[split] = evaluate_checkpoint(checkpoint, manifest, out / f"{split}-lm", cfg.data.cache_dir,
                                             name=f"{split} (beam + LM)", verbose=False, decoder=decoder)
    return decoder, results


def _training_done(done: Path, max_minutes: float) -> bool:
    """Whether ``done.json`` stands: not when the run ended at its time budget and the budget has
    been raised (or lifted) since, so that ``train.max_minutes=240`` on a rerun trains on."""
    if not done.exists():
        return False
    record = json.loads(done.read_text())
    if record.get("out_of_time") and (not max_minutes or max_minutes > record.get("max_minutes", 0)):
        print(f"{done}: the training ended at train.max_minutes={record.get('max_minutes')}; "
              f"continuing to {max_minutes or 'no limit'}")
        return False
    return True


def run_recipe(name: str, out_dir: str | Path, data: str | None = None, overrides: list[str] | None = None,
               prepare_options: dict | None = None, config: str | None = None,
               lm_options: dict | None = None) -> dict:
    """Run every stage of recipe ``name`` into ``out_dir``; returns the summary.

    ``lm_options``: ``decoder`` (a DecoderConfig to evaluate with instead of the recipe's own
    LM), ``lm_text`` (text files for the LM), ``no_lm`` (greedy only), ``root`` (librispeech)."""
    from .train import train

    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    config_name, prepare = RECIPES[name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(title: str) -> float:
        print(f"\n=== {name}: {title} ===", flush=True)
        return time.time()

    started = stage("prepare data")
    manifests = prepare(out, data, prepare_options or {})
    timings["prepare"] = time.time() - started

    started = stage("train")
    train_dir = out / "train"
    cfg = load_config(config_path(config or manifests.config or config_name), [
        f"data.train_manifest={manifests.train}", f"data.dev_manifest={manifests.dev}",
        f"data.cache_dir={out / 'features'}", *(overrides or [])])
    suffix = ".ckpt" if cfg.backend == "mindspore" else ".pt"
    done = train_dir / "done.json"
    if _training_done(done, cfg.train.max_minutes):
        print(f"already trained: {train_dir} (delete {done} to train again)")
    else:
        last = train_dir / f"last{suffix}"
        metrics = train(cfg, train_dir, resume=last.exists())
        if metrics.get("completed"):  # not after train.max_steps: a rerun continues the training
            atomic_write_text(done, json.dumps({**metrics, "max_minutes": cfg.train.max_minutes}, indent=2) + "\n")
    timings["train"] = time.time() - started
    checkpoint = train_dir / f"best{suffix}"
    if not checkpoint.exists():  # stopped before the first epoch's end
        checkpoint = train_dir / f"last{suffix}"

    results = {}
    started = stage("evaluate")
    for split, manifest in manifests.tests.items():
        results_file = out / split / "results.json"
        if results_file.exists() and results_file.stat().st_mtime > checkpoint.stat().st_mtime:
            results[split] = json.loads(results_file.read_text())
            print(f"{split}: already evaluated, WER {100 * results[split]['wer']:.2f} %")
            continue
        results[split] = evaluate_checkpoint(checkpoint, manifest, out / split, cfg.data.cache_dir, name=split,
                                             verbose=False)
    timings["evaluate"] = time.time() - started

    lm_options = {"root": data, **(lm_options or {})}
    lm_results: dict = {}
    decoder = None
    if lm_options.get("decoder") or (manifests.lm and not lm_options.get("no_lm")):
        started = stage("language model: build, tune on dev, evaluate with beam search")
        try:
            decoder, lm_results = _decode_with_lm(out, manifests, checkpoint, cfg, lm_options)
        except DownloadError as error:
            # The model is trained and scored: a missing LM download must not throw that away.
            print(f"language model: skipped, the LM could not be downloaded ({error}); the results are greedy "
                  "only. Rerun the recipe when the network is back, or pass --lm-text FILES or --no-lm.")
        timings["language model"] = time.time() - started

    started = stage("export")
    onnx_path = out / "model.onnx"
    if not onnx_path.exists() or onnx_path.stat().st_mtime < checkpoint.stat().st_mtime:
        report = export_checkpoint(checkpoint, onnx_path, "onnx", next(iter(manifests.tests.values())),
                                   cfg.data.cache_dir)
        print(f"exported {onnx_path} (max abs difference to PyTorch: {report['max_abs_diff']:.2e})")
    if manifests.int8:
        int8_path = out / "model.int8.onnx"
        if not int8_path.exists() or int8_path.stat().st_mtime < checkpoint.stat().st_mtime:
            export_checkpoint(checkpoint, int8_path, "onnx", next(iter(manifests.tests.values())),
                              cfg.data.cache_dir, int8=True)
            print(f"exported {int8_path} (int8, for ds2 transcribe)")
    timings["export"] = time.time() - started

    started = stage("transcribe")
    from .transcribe import Transcriber

    example = read_any_manifest(next(iter(manifests.tests.values())))[0]
    transcription = Transcriber.from_onnx(onnx_path, decoder=decoder).transcribe(example.path)
    print(f"{example.path}\n  reference:  {example.text}\n  hypothesis: {transcription['text']}")
    timings["transcribe"] = time.time() - started

    summary = {"recipe": name, "run": str(out), "checkpoint": str(checkpoint), "onnx": str(onnx_path),
               "results": {k: {"wer": v["wer"], "cer": v["cer"], "num_utterances": v["num_utterances"]}
                           for k, v in results.items()},
               "results_lm": {k: {"wer": v["wer"], "cer": v["cer"], "num_utterances": v["num_utterances"],
                                  "decoder": v.get("decoder")} for k, v in lm_results.items()},
               "example": {"path": example.path, "reference": example.text, "hypothesis": transcription["text"]},
               "seconds": {k: round(v, 1) for k, v in timings.items()}}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"\n=== {name}: done ===")
    for split, r in summary["results"].items():
        print(f"{split:>20}: WER {100 * r['wer']:6.2f} %  CER {100 * r['cer']:6.2f} %  "
              f"({r['num_utterances']} utterances) -> {out / split / 'results.json'}")
        if split in summary["results_lm"]:
            lm = summary["results_lm"][split]
            change = (lm["wer"] - r["wer"]) / r["wer"] if r["wer"] else 0.0
            print(f"{'beam + LM':>20}: WER {100 * lm['wer']:6.2f} %  CER {100 * lm['cer']:6.2f} %  "
                  f"({100 * change:+.1f} % relative to greedy) -> {out / (split + '-lm') / 'results.json'}")
    print(f"{'model':>20}: {checkpoint} and {onnx_path}\n{'summary':>20}: {out / 'summary.json'}")
    return summary
