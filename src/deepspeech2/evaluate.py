"""Evaluation: greedy decoding of a manifest, per-utterance Ref/Hyp, corpus WER/CER.

``evaluate`` scores any model with ``cfg`` and ``log_probs(batch)`` (a backend, or an ONNX
Runtime session through ``Transcriber``); ``evaluate_checkpoint`` and ``evaluate_onnx`` are
``ds2 eval``'s two entry points."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .checkpoints import load_backend
from .data.dataset import SkipReport, SpeechDataset, load_dataset
from .data.features import FeatureCache, default_cache_dir
from .decoding import Decoder, DecoderConfig, decode_batch
from .metrics import ErrorRates
from .progress import bar as progress_bar
from .text import Alphabet
from .transcribe import Transcriber


def decode_dataset(backend, dataset: SpeechDataset, batch_size: int = 32, progress: bool = True,
                   desc: str = "decode", decoder: Decoder | None = None) -> list[str]:
    """Hypotheses for every utterance, in dataset order (batched by length); greedy unless
    ``decoder`` (beam search, with or without an LM) is given."""
    alphabet = Alphabet(backend.cfg.text.blank)
    order = np.argsort(np.asarray(dataset.frames), kind="stable").tolist()
    hypotheses: list[str] = [""] * len(dataset)
    bar = progress_bar(total=len(order), desc=desc, unit="utt", disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        indices = order[start: start + batch_size]
        log_probs, lengths = backend.log_probs(dataset.batch(indices))
        for i, text in zip(indices, decode_batch(log_probs, lengths, alphabet, decoder), strict=False):
            hypotheses[i] = text
        bar.update(len(indices))
    bar.close()
    return hypotheses


def score(references: list[str], hypotheses: list[str]) -> tuple[ErrorRates, list[tuple[float, float]]]:
    rates = ErrorRates()
    per_utterance = [rates.add(r, h) for r, h in zip(references, hypotheses, strict=False)]
    return rates, per_utterance


def evaluate(backend, dataset: SpeechDataset, out_dir: str | Path | None = None, batch_size: int = 32,
             verbose: bool = True, name: str = "", decoder: DecoderConfig | None = None) -> dict:
    """Decode (greedy, or as ``decoder`` says), print ``Ref:``/``Hyp:``/``WER: CER:`` per
    utterance, write results.json."""
    references = [u.text for u in dataset.utterances]
    beam = Decoder(decoder, Alphabet(backend.cfg.text.blank)) if decoder and decoder.type == "beam" else None
    hypotheses = decode_dataset(backend, dataset, batch_size, desc=f"eval {name}".strip(), decoder=beam)
    rates, per_utt = score(references, hypotheses)
    lines = []
    for utt, hyp, (w, c) in zip(dataset.utterances, hypotheses, per_utt, strict=False):
        if verbose:
            print(f"Ref: {utt.text.lower()}\nHyp: {hyp.lower()}\nWER: {w:.4f} CER: {c:.4f}\n"
                  + "-" * 80, file=sys.stdout)
        lines.append(json.dumps({"path": utt.path, "ref": utt.text, "hyp": hyp, "wer": round(w, 6),
                                 "cer": round(c, 6), "speaker": utt.speaker}))
    results = {"wer": rates.wer, "cer": rates.cer, "num_utterances": rates.utterances,
               "num_words": rates.words, "num_chars": rates.chars, "word_edits": rates.word_edits,
               "char_edits": rates.char_edits, "decoder": (decoder or DecoderConfig()).to_dict()}
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_text(out / "utterances.jsonl", "\n".join(lines) + "\n")
        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    print(f"{name + ': ' if name else ''}WER {100 * rates.wer:.2f} % CER {100 * rates.cer:.2f} % "
          f"({rates.utterances} utterances, {rates.words} words)")
    return results


def evaluate_checkpoint(checkpoint: str | Path, manifest: str | Path, out_dir: str | Path | None,
                        cache_dir: str | None = None, name: str = "", verbose: bool = True,
                        batch_size: int = 32, int8: bool = False, decoder: DecoderConfig | None = None) -> dict:
    """``ds2 eval``: a checkpoint (either backend; ``int8``: torch int8 dynamic quantization) on ``manifest``;
    ``decoder``: beam search settings (greedy when None)."""
    cfg, backend = load_backend(checkpoint, cache_dir)
    if int8:
        from .backends.base import quantize_int8

        try:
            quantize_int8(backend)
        except ValueError as e:
            raise SystemExit(f"{checkpoint}: {e}") from None
    return evaluate_model(backend, cfg, manifest, out_dir, name, verbose, batch_size, decoder)


def evaluate_onnx(model: str | Path, manifest: str | Path, out_dir: str | Path | None, cache_dir: str | None = None,
                  name: str = "", verbose: bool = True, batch_size: int = 32,
                  decoder: DecoderConfig | None = None) -> dict:
    """``ds2 eval --onnx``: an exported model (fp32 or int8) on ONNX Runtime, scored as a checkpoint is."""
    transcriber = Transcriber.from_onnx(model)
    cfg = transcriber.cfg
    if cache_dir:
        cfg.data.cache_dir = str(cache_dir)
    return evaluate_model(transcriber, cfg, manifest, out_dir, name, verbose, batch_size, decoder)


def evaluate_model(model, cfg, manifest: str | Path, out_dir: str | Path | None, name: str, verbose: bool,
                   batch_size: int, decoder: DecoderConfig | None = None) -> dict:
    """Score ``model`` (anything with ``cfg`` and ``log_probs(batch)``) on ``manifest``."""
    report = SkipReport()
    dataset = load_dataset(manifest, cfg, FeatureCache(default_cache_dir(cfg), cfg.audio.feature_spec()), report)
    if out_dir is not None and report.items:
        report.write(Path(out_dir) / "skipped.jsonl")
    results = evaluate(model, dataset, out_dir, batch_size, verbose=verbose, name=name, decoder=decoder)
    results["skipped"] = len(report.items)
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "results.json", json.dumps(results, indent=2) + "\n")
    return results
