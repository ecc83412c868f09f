"""Decoding rows: greedy, beam search without an LM, and beam search with the quickstart's LM at widths
16/64/256 and as tuned (decoder.yaml), on the mini corpus's test set. Each row times decoding only (the
acoustic log-probabilities are computed once and cached), on one thread, and scores the transcripts:
decode RTF and test WER side by side.

They need a finished quickstart run (``ds2 run mini``: its model, ``lm/lm.arpa`` and ``lm/decoder.yaml``), in
``runs/mini`` or ``$DS2_MINI_RUN``; without one they are reported as not run.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .harness import Bench, NotRun, RowResult

WIDTHS = (16, 64, 256)


def mini_run() -> Path:
    return Path(os.environ.get("DS2_MINI_RUN", "runs/mini"))


def _decoding_setup(b: Bench):
    """(log-probs, references, alphabet, audio seconds, tuned decoder) of the mini test set (memoised)."""
    if "decoding" not in b.memo:
        if b.w.tiny:
            raise NotRun("the tiny workload has no trained model to decode with")
        from ..decoding import load_decoder_config
        from ..tuning import model_log_probs

        run = mini_run()
        checkpoint, decoder = run / "train" / "best.pt", run / "lm" / "decoder.yaml"
        test = run / "corpus" / "test.jsonl"
        missing = [str(p) for p in (checkpoint, decoder, test) if not p.exists()]
        if missing:
            raise NotRun(f"needs a finished `ds2 run mini --out {run}` (missing {', '.join(missing)}); "
                         "DS2_MINI_RUN=FOLDER points elsewhere")
        log_probs, references, alphabet = model_log_probs(test, run / "lm", checkpoint=str(checkpoint),
                                                          cache_dir=str(run / "features"))
        from ..checkpoints import read_config

        cfg = read_config(checkpoint)
        frame_seconds = cfg.audio.hop_length / cfg.audio.sample_rate * cfg.model.time_stride
        audio = sum(len(lp) for lp in log_probs) * frame_seconds
        b.memo["decoding"] = (log_probs, references, alphabet, audio, load_decoder_config(decoder))
    return b.memo["decoding"]


def _decode_row(b: Bench, name: str, setup: str, cfg, tuned: bool = False) -> RowResult:
    """Decode the whole test set, timing decoding's CPU seconds on one thread (process time: what
    the search costs, whatever else runs on the machine), after one warm-up utterance (the LM loads)."""
    from ..decoding import Decoder
    from ..metrics import ErrorRates
    from .harness import torch_threads

    log_probs, references, alphabet, audio, _ = _decoding_setup(b)
    decoder = Decoder(cfg, alphabet)
    lengths = [np.array([len(lp)]) for lp in log_probs]
    with torch_threads(1):
        decoder.decode(log_probs[0][None], lengths[0])
        t0 = time.process_time()
        hypotheses = [decoder.decode(lp[None], n)[0] for lp, n in zip(log_probs, lengths, strict=True)]
        seconds = time.process_time() - t0
    rates = ErrorRates()
    for ref, hyp in zip(references, hypotheses, strict=True):
        rates.add(ref, hyp)
    return RowResult(name, setup, kind="decode", batch=1, rtf=seconds / audio, wer=rates.wer,
                     note=f"mini test WER {100 * rates.wer:.2f} %, CER {100 * rates.cer:.2f} %",
                     details={"threads": 1, "audio_seconds": round(audio, 1), "utterances": len(log_probs),
                              "decoder": cfg.to_dict(), "cer": rates.cer, "tuned": tuned})


def row_decode_greedy(b: Bench) -> RowResult:
    from ..decoding import DecoderConfig

    return _decode_row(b, "decode-greedy", "greedy (best path)", DecoderConfig())


def row_decode_beam(b: Bench) -> RowResult:
    tuned = _decoding_setup(b)[4]
    cfg = replace(tuned, lm=None, alpha=0.0, beta=0.0)
    return _decode_row(b, "decode-beam", f"beam search {cfg.beam_width}, no LM", cfg)


def _lm_row(width: int):
    def row(b: Bench) -> RowResult:
        tuned = _decoding_setup(b)[4]
        cfg = replace(tuned, beam_width=width)
        tuned_note = " (the tuned width)" if width == tuned.beam_width else ""
        return _decode_row(b, f"decode-lm-{width}", f"beam {width} + char {Path(tuned.lm or '').name} "
                           f"(alpha {tuned.alpha:g}, beta {tuned.beta:g}){tuned_note}", cfg)

    return row


def row_decode_lm_tuned(b: Bench) -> RowResult:
    """decoder.yaml exactly as `ds2 lm tune` wrote it: the target row."""
    tuned = _decoding_setup(b)[4]
    return _decode_row(b, "decode-lm-tuned", f"decoder.yaml: beam {tuned.beam_width} + char LM (alpha "
                       f"{tuned.alpha:g}, beta {tuned.beta:g})", tuned, tuned=True)


DECODING_ROWS = {"decode-greedy": row_decode_greedy, "decode-beam": row_decode_beam,
                 **{f"decode-lm-{w}": _lm_row(w) for w in WIDTHS}, "decode-lm-tuned": row_decode_lm_tuned}
