"""CTC decoding: greedy (best path), and beam search with an n-gram LM.

Greedy decoding takes the most likely label per frame. Beam search keeps the
``beam_width`` best prefixes and adds ``alpha`` x the LM's log10 probability and
``beta`` per word (the word insertion bonus). The search itself is flashlight-text's C++
CTC decoder (KenLM bundled): lexicon-free with a character LM (the default: characters
outside any word list stay possible), lexicon-constrained with a word LM; see
``BeamDecoder``.

Settings come from a ``DecoderConfig``, written by ``ds2 lm tune`` as ``decoder.yaml``;
``load_decoder_config`` rejects unknown keys and values out of range, naming the file.
``decode_batch`` is what evaluation, transcription and the server call.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .text import Alphabet


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float


# --------------------------------------------------------------------------- greedy

def greedy_path(log_probs: np.ndarray, length: int | None = None) -> np.ndarray:
    """Most likely label per frame, (T, C) -> (T,)."""
    if length is not None:
        log_probs = log_probs[:length]
    return np.asarray(log_probs).argmax(axis=-1)


def collapse(path: np.ndarray, blank_id: int) -> tuple[list[int], list[int]]:
    """Merge repeats and drop blanks; returns label ids and the frame each one starts at."""
    ids, frames = [], []
    previous = -1
    for frame, label in enumerate(np.asarray(path).tolist()):
        if label != previous and label != blank_id:
            ids.append(label)
            frames.append(frame)
        previous = label
    return ids, frames


def path_text(path: np.ndarray, alphabet: Alphabet) -> str:
    ids, _ = collapse(path, alphabet.blank_id)
    return " ".join(alphabet.decode(ids).split())


def greedy_decode(log_probs: np.ndarray, lengths: np.ndarray, alphabet: Alphabet) -> list[str]:
    """Batch (B, T, C) of log-probabilities -> texts."""
    return [path_text(greedy_path(lp, int(length)), alphabet) for lp, length in zip(log_probs, lengths, strict=False)]


def path_words(path: np.ndarray, alphabet: Alphabet, frame_seconds: float, offset: float = 0.0) -> list[Word]:
    """Words with start/end times from a frame-level CTC path (T,) of label ids.

    A word starts at the frame of its first character and ends after the last frame
    on which its last character is still emitted.
    """
    path = np.asarray(path)
    ids, frames = collapse(path, alphabet.blank_id)
    labels = alphabet.labels
    space = alphabet.labels.index(" ")
    words: list[Word] = []
    current, start, end = "", 0, 0
    for label, frame in zip(ids, frames, strict=False):
        if label == space:
            if current:
                words.append(Word(current, offset + start * frame_seconds, offset + end * frame_seconds))
            current = ""
            continue
        if not current:
            start = frame
        current += labels[label]
        end = frame + 1
        while end < len(path) and path[end] == label:
            end += 1
    if current:
        words.append(Word(current, offset + start * frame_seconds, offset + end * frame_seconds))
    return words


def greedy_words(log_probs: np.ndarray, alphabet: Alphabet, frame_seconds: float,
                 offset: float = 0.0) -> list[Word]:
    """Words with start/end times from the greedy CTC alignment of one utterance (T, C)."""
    return path_words(greedy_path(log_probs), alphabet, frame_seconds, offset)


# --------------------------------------------------------------------------- settings

class DecoderConfigError(ValueError):
    """A decoder file or setting that cannot be used; the message names the file and key."""


# Ranges checked by DecoderConfig.validate: (low, high), both inclusive.
RANGES: dict[str, tuple[float, float]] = {
    "alpha": (0.0, 10.0),
    "beta": (-20.0, 20.0),
    "beam_width": (1, 4096),
    "beam_threshold": (0.0, 1000.0),
    "token_top_n": (1, 4096),
    "token_cum_prob": (0.5, 1.0),
}


@dataclass
class DecoderConfig:
    """How to turn log-probabilities into text (the keys of ``decoder.yaml``)."""

    type: str = "greedy"  # "greedy", or "beam" (with ``lm``, or without an LM)
    lm: str | None = None  # ARPA file (.arpa, .arpa.gz), character or word LM; relative to the decoder file
    alpha: float = 0.5  # LM weight, on log10 LM probabilities
    beta: float = 1.0  # word insertion bonus, per word
    beam_width: int = 64
    beam_threshold: float = 25.0  # drop hypotheses this far (natural log) below the best
    token_top_n: int = 8  # per frame, at most this many labels are tried...
    token_cum_prob: float = 0.999  # ...and only the most likely ones that sum to this

    def validate(self, source: str = "decoder settings") -> DecoderConfig:
        if self.type not in ("greedy", "beam"):
            raise DecoderConfigError(f"{source}: type must be 'greedy' or 'beam', got {self.type!r}")
        for key, (low, high) in RANGES.items():
            value = getattr(self, key)
            integer = isinstance(low, int)
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                raise DecoderConfigError(f"{source}: {key} must be {'an integer' if integer else 'a number'}, "
                                         f"got {value!r}")
            if not low <= value <= high:
                raise DecoderConfigError(f"{source}: {key}={value} out of range [{low}, {high}]")
        if self.lm is not None and not isinstance(self.lm, str):
            raise DecoderConfigError(f"{source}: lm must be a file path, got {self.lm!r}")
        if self.type == "greedy" and self.lm:
            raise DecoderConfigError(f"{source}: an lm needs type: beam")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def load_decoder_config(path: str | os.PathLike) -> DecoderConfig:
    """Read ``decoder.yaml``; unknown keys, bad types and out-of-range values raise
    DecoderConfigError naming the file and the key. A relative ``lm`` is taken relative
    to the file's folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DecoderConfigError(f"{path}: decoder file not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DecoderConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(values, dict):
        raise DecoderConfigError(f"{path}: expected a mapping of decoder settings")
    known = {f.name for f in fields(DecoderConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DecoderConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key in ("alpha", "beta", "beam_threshold", "token_cum_prob"):
        if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
            values[key] = float(values[key])
    cfg = DecoderConfig(**values)
    if cfg.lm and not Path(cfg.lm).is_absolute():
        cfg.lm = str((path.parent / cfg.lm).resolve())
    return cfg.validate(str(path))


def save_decoder_config(cfg: DecoderConfig, path: str | os.PathLike) -> Path:
    """Write ``decoder.yaml`` atomically (the LM path relative to the file when it is below it)."""
    import yaml

    from .atomic import atomic_write_text

    path = Path(path)
    values = cfg.validate().to_dict()
    if cfg.lm:
        lm = Path(cfg.lm).resolve()
        try:
            values["lm"] = str(lm.relative_to(path.parent.resolve()))
        except ValueError:
            values["lm"] = str(lm)
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
    return path


def decoder_config_from_args(decoder: str | None = None, lm: str | None = None, alpha: float | None = None,
                             beta: float | None = None, beam_width: int | None = None) -> DecoderConfig:
    """``--decoder FILE`` and/or the individual flags (flags win). Beam search when any
    beam setting is given; greedy otherwise."""
    cfg = load_decoder_config(decoder) if decoder else DecoderConfig()
    flags = {"lm": lm, "alpha": alpha, "beta": beta, "beam_width": beam_width}
    for key, value in flags.items():
        if value is not None:
            setattr(cfg, key, value)
    if any(v is not None for v in flags.values()):
        cfg.type = "beam"
    return cfg.validate("command-line decoder settings" if not decoder else str(decoder))


# --------------------------------------------------------------------------- beam search

def prune_frames(log_probs: np.ndarray, top_n: int, cum_prob: float, floor: float = -1e4) -> np.ndarray:
    """Per frame, keep the ``top_n`` most likely labels and, of those, only as many as
    it takes to reach ``cum_prob``; the others get ``floor`` (never chosen by the search)."""
    lp = np.ascontiguousarray(log_probs, dtype=np.float32)
    classes = lp.shape[-1]
    if top_n >= classes and cum_prob >= 1.0:
        return lp
    order = np.argsort(-lp, axis=-1)
    sorted_lp = np.take_along_axis(lp, order, axis=-1)
    cumulative = np.cumsum(np.exp(sorted_lp), axis=-1)
    # A label stays when the labels before it do not yet reach cum_prob.
    keep_sorted = np.concatenate([np.ones_like(cumulative[:, :1], dtype=bool),
                                  cumulative[:, :-1] < cum_prob], axis=-1)
    keep_sorted[:, top_n:] = False
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, lp, np.float32(floor)).astype(np.float32)


class BeamDecoder:
    """CTC prefix beam search (flashlight-text's C++ decoders) with an optional KenLM n-gram.

    * A character LM (``ds2 lm build``'s default; tokens are the letters and ``|`` for the
      space) runs in the lexicon-free decoder: every emitted label is scored by the LM, so
      any spelling stays possible. This is the default.
    * A word LM (OpenSLR's LibriSpeech LMs) needs words spelled out: it runs in
      flashlight's lexicon decoder, with the LM's own words as the lexicon, so words outside
      the LM cannot be produced (the lexicon-constrained mode).
    * Without an LM: lexicon-free beam search on the acoustic scores alone.

    ``beta`` is added at each word boundary (lexicon-free) or per word (lexicon).
    """

    def __init__(self, cfg: DecoderConfig, alphabet: Alphabet):
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            LexiconFreeDecoder,
            LexiconFreeDecoderOptions,
            ZeroLM,
        )
        from flashlight.lib.text.dictionary import Dictionary

        self.cfg = cfg.validate()
        self.alphabet = alphabet
        labels = ["|" if c == " " else c for c in alphabet.labels]
        self.sil = labels.index("|")
        self.tokens = Dictionary()
        for label in labels:
            self.tokens.add_entry(label)
        top_n = min(cfg.token_top_n, len(labels))
        self.unit = None
        if not cfg.lm:
            options = LexiconFreeDecoderOptions(
                beam_size=cfg.beam_width, beam_size_token=top_n, beam_threshold=cfg.beam_threshold, lm_weight=0.0,
                sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
            self.lm = ZeroLM()
            self.decoder = LexiconFreeDecoder(options, self.lm, self.sil, alphabet.blank_id, [])
            return
        lm_path = Path(cfg.lm)
        if not lm_path.is_file():
            raise DecoderConfigError(f"{lm_path}: LM file not found")
        self.unit, self.lm, trie, unk = _load_lm(lm_path, self.tokens, alphabet)
        if self.unit == "char":
            options = LexiconFreeDecoderOptions(
                beam_size=cfg.beam_width, beam_size_token=top_n, beam_threshold=cfg.beam_threshold,
                lm_weight=cfg.alpha, sil_score=cfg.beta, log_add=False, criterion_type=CriterionType.CTC)
            self.decoder = LexiconFreeDecoder(options, self.lm, self.sil, alphabet.blank_id, [])
        else:
            options = LexiconDecoderOptions(
                beam_size=cfg.beam_width, beam_size_token=top_n, beam_threshold=cfg.beam_threshold,
                lm_weight=cfg.alpha, word_score=cfg.beta, unk_score=float("-inf"), sil_score=0.0, log_add=False,
                criterion_type=CriterionType.CTC)
            self.decoder = LexiconDecoder(options, trie, self.lm, self.sil, alphabet.blank_id, unk, [], False)

    def best_path(self, log_probs: np.ndarray) -> np.ndarray:
        """The best hypothesis's frame-level label path for one utterance (T, C) -> (T,)."""
        lp = prune_frames(log_probs, self.cfg.token_top_n, self.cfg.token_cum_prob)
        if lp.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        results = self.decoder.decode(lp.ctypes.data, lp.shape[0], lp.shape[1])
        # flashlight pads the path with a word boundary before the first and after the last frame.
        return np.asarray(results[0].tokens, dtype=np.int64)[1: lp.shape[0] + 1]


_LM_CACHE: dict[tuple, tuple] = {}


def _load_lm(path: Path, tokens, alphabet: Alphabet) -> tuple:
    """(unit, KenLM, trie or None, unk index) for ``path``, loaded once per file version and
    alphabet (decoders built for each tuning point, or by a server, share it). The ARPA's
    words are checked against the alphabet first; KenLM's own errors come back as a message
    naming the file."""
    from flashlight.lib.text.decoder import SmearingMode, Trie
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    from .lm import SPECIAL, UNK, LMError, arpa_words, check_vocabulary

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(alphabet.labels))
    if key in _LM_CACHE:
        return _LM_CACHE[key]
    arpa = path
    if path.suffix == ".bin":  # KenLM's binary (`ds2 lm build` with build_binary): its words come from the ARPA
        arpa = next((p for p in (path.with_suffix(".arpa"), path.with_suffix(".arpa.gz")) if p.is_file()), None)
        if arpa is None:
            raise LMError(f"{path}: a KenLM binary needs its ARPA file beside it ({path.with_suffix('.arpa')}): "
                          "its words are checked against the alphabet and make the lexicon of a word LM")
    words = arpa_words(arpa)
    unit = check_vocabulary(path, words, alphabet.characters)
    if unit == "char":
        vocabulary = tokens
    else:
        vocabulary = Dictionary()
        for word in words:
            vocabulary.add_entry(word)
        if UNK not in words:
            vocabulary.add_entry(UNK)
    try:
        lm = KenLM(str(path), vocabulary)
    except Exception as e:  # KenLM raises a bare RuntimeError with its parser's message
        raise LMError(f"{path}: KenLM cannot load it: {str(e).strip()[-400:]}") from None
    if unit == "char":
        _LM_CACHE[key] = ("char", lm, None, -1)
        return _LM_CACHE[key]
    # The lexicon: every word of the LM spelled in the alphabet, ending at a word boundary.
    sil = tokens.get_index("|")
    trie = Trie(tokens.index_size(), sil)
    start = lm.start(False)
    for word in words:
        if word in SPECIAL:
            continue
        index = vocabulary.get_index(word)
        _, score = lm.score(start, index)
        trie.insert([tokens.get_index(c) for c in word] + [sil], index, score)
    trie.smear(SmearingMode.MAX)
    _LM_CACHE[key] = ("word", lm, trie, vocabulary.get_index(UNK))
    return _LM_CACHE[key]


class Decoder:
    """Greedy or beam decoding of batches of log-probabilities, as a ``DecoderConfig`` says."""

    def __init__(self, cfg: DecoderConfig | None, alphabet: Alphabet):
        self.cfg = (cfg or DecoderConfig()).validate()
        self.alphabet = alphabet
        self.beam = BeamDecoder(self.cfg, alphabet) if self.cfg.type == "beam" else None

    def path(self, log_probs: np.ndarray, length: int | None = None) -> np.ndarray:
        lp = log_probs if length is None else log_probs[:length]
        return greedy_path(lp) if self.beam is None else self.beam.best_path(lp)

    def decode(self, log_probs: np.ndarray, lengths: np.ndarray) -> list[str]:
        """Batch (B, T, C) of log-probabilities -> texts."""
        return [path_text(self.path(lp, int(n)), self.alphabet) for lp, n in zip(log_probs, lengths, strict=False)]

    def words(self, log_probs: np.ndarray, frame_seconds: float, offset: float = 0.0) -> list[Word]:
        """Word timings from the best path of one utterance (T, C)."""
        return path_words(self.path(log_probs), self.alphabet, frame_seconds, offset)


def decode_batch(log_probs: np.ndarray, lengths: np.ndarray, alphabet: Alphabet,
                 decoder: Decoder | DecoderConfig | None = None) -> list[str]:
    """Texts for a batch (B, T, C) of log-probabilities: greedy when ``decoder`` is None,
    else with the given Decoder (build one once and reuse it: loading an LM takes time)."""
    if decoder is None:
        return greedy_decode(log_probs, lengths, alphabet)
    if isinstance(decoder, DecoderConfig):
        decoder = Decoder(decoder, alphabet)
    return decoder.decode(log_probs, lengths)
