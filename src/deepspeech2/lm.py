"""N-gram language models: an ARPA estimator (interpolated modified Kneser-Ney), ARPA
reading and checking, and the OpenSLR LibriSpeech LMs.

No ``lmplz`` ships for this platform, so the estimator lives here. It follows Chen &
Goodman's interpolated modified Kneser-Ney as KenLM's ``lmplz`` implements it:

* the highest order uses raw counts, lower orders the number of distinct words seen to
  the left (continuation counts), except n-grams that begin with ``<s>`` (nothing can
  precede them) which keep their raw counts;
* three discounts per order (for counts 1, 2 and 3+) from the counts of counts;
* unigrams are interpolated with the uniform distribution over the vocabulary
  (``<unk>`` included, ``<s>`` excluded), so ``<unk>`` gets the leftover mass;
* the backoff weight of a context is the mass it leaves to its shorter context, and,
  after count pruning, is recomputed so that every context's distribution still sums
  to one.

Text is normalised with the project's own ``normalize_text`` so that the LM and the
acoustic model share one alphabet. ``unit="char"`` builds a character LM instead (its
tokens are the letters and ``|`` for the space between words).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_output
from .text import CHARACTERS, read_text_lines

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPECIAL = (BOS, EOS, UNK)
WORD_SEPARATOR = "|"  # the space between words, as a token of a character LM
LOG10_ZERO = -99.0  # what ARPA files give <s>: it is never predicted
MAX_ORDER = 6  # flashlight-text's KenLM is compiled with KENLM_MAX_ORDER=6


class LMError(ValueError):
    """An unusable LM or LM text; the message names the file (and line)."""


# --------------------------------------------------------------------------- text

def read_lm_text(paths: Sequence[str | os.PathLike], exclude: Iterable[str] = ()) -> tuple[list[str], dict]:
    """Normalised sentences from plain-text files (one sentence per line; ``ID<TAB>text``
    lines too). Lines that normalise to nothing or that contain characters outside the
    alphabet are skipped and counted; sentences in ``exclude`` (e.g. test transcripts) are
    dropped. Raises LMError when a file is missing or gives no sentence."""
    excluded = set(exclude)
    sentences: list[str] = []
    stats = {"lines": 0, "skipped": 0, "excluded": 0}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise LMError(f"{path}: LM text file not found")
        before = len(sentences)
        try:
            for sentence in read_text_lines(path):
                stats["lines"] += 1
                if not sentence:  # unspellable (None) or empty
                    stats["skipped"] += 1
                elif sentence in excluded:
                    stats["excluded"] += 1
                else:
                    sentences.append(sentence)
        except UnicodeDecodeError as e:
            raise LMError(f"{path}: not UTF-8 text ({e})") from None
        if len(sentences) == before and stats["excluded"] == 0:
            raise LMError(f"{path}: no usable sentence (empty, or nothing left after normalisation)")
    if not sentences:
        raise LMError(f"{', '.join(map(str, paths))}: no sentence left to build an LM from")
    return sentences, stats


def tokenize(sentence: str, unit: str = "word") -> list[str]:
    """A normalised sentence as LM tokens: words, or characters with ``|`` between words."""
    if unit == "word":
        return sentence.split()
    if unit == "char":
        return list(" ".join(sentence.split()).replace(" ", WORD_SEPARATOR))
    raise LMError(f"LM unit must be 'word' or 'char', got {unit!r}")


# --------------------------------------------------------------------------- estimation

@dataclass
class NGramModel:
    """An n-gram backoff model: log10 probabilities and backoff weights per order."""

    order: int
    # probs[n][ngram] = log10 p(last | rest); backoffs[n][ngram] = log10 backoff weight
    probs: list[dict[tuple[str, ...], float]] = field(default_factory=list)
    backoffs: list[dict[tuple[str, ...], float]] = field(default_factory=list)
    discounts: list[tuple[float, float, float]] = field(default_factory=list)

    def log10_prob(self, word: str, context: Sequence[str]) -> float:
        """log10 p(word | context) by the ARPA backoff rule (context: oldest word first)."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        if (word,) not in self.probs[1]:
            word = UNK
        penalty = 0.0
        while True:
            gram = context + (word,)
            p = self.probs[len(gram)].get(gram)
            if p is not None:
                return p + penalty
            if not context:
                return self.probs[1][(UNK,)] + penalty
            penalty += self.backoffs[len(context)].get(context, 0.0)
            context = context[1:]

    @property
    def vocabulary(self) -> list[str]:
        return [g[0] for g in self.probs[1]]


def _discounts(count_of_counts: dict[int, int], order: int) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ (Chen & Goodman) from counts of counts;
    sane constants when the text is too small for the estimate to exist."""
    t = [count_of_counts.get(k, 0) for k in range(1, 5)]
    try:
        y = t[0] / (t[0] + 2 * t[1])
        d = (1 - 2 * y * t[1] / t[0], 2 - 3 * y * t[2] / t[1], 3 - 4 * y * t[3] / t[2])
    except ZeroDivisionError:
        d = (-1.0, -1.0, -1.0)
    fallback = (0.5, 1.0, 1.5)
    return tuple(d[k] if 0 < d[k] < k + 1 else fallback[k] for k in range(3))  # type: ignore[return-value]


def estimate(sentences: Iterable[Sequence[str]], order: int = 3, prune: Sequence[int] = ()) -> NGramModel:
    """Interpolated modified Kneser-Ney model of ``order`` from tokenised sentences.

    ``prune[k]`` (k = 0 for unigrams, which are never pruned) drops n-grams of order k+1
    whose (adjusted) count is at most that number, as ``lmplz --prune`` does; n-grams that
    a kept longer one needs as its context or suffix are kept.
    """
    if not 1 <= order <= MAX_ORDER:
        raise LMError(f"LM order must be 1 to {MAX_ORDER} (the highest flashlight-text's KenLM loads), got {order}")
    prune = list(prune) + [prune[-1] if prune else 0] * max(0, order - len(prune))
    if any(p < 0 for p in prune) or (prune and prune[0] != 0):
        raise LMError(f"prune thresholds must be >= 0 and 0 for unigrams, got {list(prune)}")

    # Raw counts of every order, sentences padded with <s> ... </s>.
    raw: list[dict[tuple[str, ...], int]] = [dict() for _ in range(order + 1)]
    n_sentences = 0
    for tokens in sentences:
        bad = [t for t in tokens if t in SPECIAL]
        if bad:
            raise LMError(f"sentence {' '.join(tokens)!r} contains the reserved token {bad[0]}")
        padded = (BOS, *tokens, EOS)
        n_sentences += 1
        for n in range(1, order + 1):
            counts = raw[n]
            for i in range(1 if n == 1 else 0, len(padded) - n + 1):
                gram = padded[i: i + n]
                counts[gram] = counts.get(gram, 0) + 1
    if n_sentences == 0:
        raise LMError("no sentence to build an LM from")
    raw[1][(BOS,)] = n_sentences  # <s> is a context, never predicted

    # Adjusted counts: continuation counts below the top order (raw for n-grams after <s>).
    adjusted: list[dict[tuple[str, ...], int]] = [dict() for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left: dict[tuple[str, ...], int] = defaultdict(int)
        for gram in raw[n + 1]:
            left[gram[1:]] += 1
        # Every n-gram not starting with <s> has a word to its left in the text.
        adjusted[n] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n].items()}
    adjusted[1].pop((BOS,), None)

    model = NGramModel(order, [dict() for _ in range(order + 1)], [dict() for _ in range(order + 1)],
                       [(0.0, 0.0, 0.0)])
    for n in range(1, order + 1):
        coc: dict[int, int] = defaultdict(int)
        for c in adjusted[n].values():
            if c <= 4:
                coc[c] += 1
        model.discounts.append(_discounts(coc, n))

    # Per context: total adjusted count and the discounted mass (gamma numerator).
    vocab = sorted({g[0] for g in adjusted[1]} | {UNK, EOS})
    interpolated: list[dict[tuple[str, ...], float]] = [dict() for _ in range(order + 1)]  # linear p
    gammas: list[dict[tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    for n in range(1, order + 1):
        d1, d2, d3 = model.discounts[n]
        totals: dict[tuple[str, ...], float] = defaultdict(float)
        mass: dict[tuple[str, ...], float] = defaultdict(float)
        for gram, c in adjusted[n].items():
            context = gram[:-1]
            totals[context] += c
            mass[context] += d1 if c == 1 else d2 if c == 2 else d3
        for context, total in totals.items():
            gammas[n - 1][context] = mass[context] / total
        probs = interpolated[n]
        if n == 1:
            uniform = gammas[0][()] / len(vocab)
            for word in vocab:
                c = adjusted[1].get((word,), 0)
                discount = 0.0 if c == 0 else d1 if c == 1 else d2 if c == 2 else d3
                probs[(word,)] = (c - discount) / totals[()] + uniform
        else:
            lower = interpolated[n - 1]
            for gram, c in adjusted[n].items():
                discount = d1 if c == 1 else d2 if c == 2 else d3
                context = gram[:-1]
                probs[gram] = (c - discount) / totals[context] + gammas[n - 1][context] * lower[gram[1:]]

    # Count pruning, from the top order down, keeping what kept longer n-grams need.
    kept: list[set[tuple[str, ...]]] = [set() for _ in range(order + 1)]
    for n in range(order, 0, -1):
        needed = set()
        if n < order:
            for gram in kept[n + 1]:
                needed.add(gram[:-1])
                needed.add(gram[1:])
        threshold = prune[n - 1] if n > 1 else 0
        kept[n] = {g for g, c in adjusted[n].items() if c > threshold or g in needed}
        if n == 1:
            kept[1] = set(interpolated[1])

    # ARPA entries, and backoff weights that make every context sum to one.
    model.probs[1] = {g: math.log10(p) for g, p in interpolated[1].items()}
    model.probs[1][(BOS,)] = LOG10_ZERO
    for n in range(2, order + 1):
        model.probs[n] = {g: math.log10(interpolated[n][g]) for g in kept[n]}
    for n in range(1, order):
        seen: dict[tuple[str, ...], int] = defaultdict(int)
        for gram in adjusted[n + 1]:
            seen[gram[:-1]] += 1
        by_context: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for gram in kept[n + 1]:
            by_context[gram[:-1]].append(gram)
        for context, grams in by_context.items():
            bow = gammas[n][context]
            if len(grams) < seen[context]:
                # Pruned words of this context now back off: give the backoff the mass the
                # kept ones leave, over what the shorter context gives the others.
                kept_mass = sum(10 ** model.probs[n + 1][g] for g in grams)
                lower_mass = sum(10 ** model.log10_prob(g[-1], g[1:-1]) for g in grams)
                if kept_mass < 1.0 and lower_mass < 1.0 - 1e-12:
                    bow = (1.0 - kept_mass) / (1.0 - lower_mass)
            model.backoffs[n][context] = math.log10(bow)
    return model


# --------------------------------------------------------------------------- ARPA files

def _format_log(value: float) -> str:
    return f"{value:.6f}" if value > LOG10_ZERO else f"{LOG10_ZERO:.0f}"


def arpa_text(model: NGramModel) -> str:
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(model.probs[n])}" for n in range(1, model.order + 1)]
    for n in range(1, model.order + 1):
        lines += ["", f"\\{n}-grams:"]
        backoffs = model.backoffs[n] if n < model.order else {}
        for gram in sorted(model.probs[n]):
            entry = f"{_format_log(model.probs[n][gram])}\t{' '.join(gram)}"
            if gram in backoffs:
                entry += f"\t{backoffs[gram]:.6f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def write_arpa(model: NGramModel, path: str | os.PathLike) -> Path:
    """Write ``model`` as an ARPA file (gzip-compressed when the name ends in .gz), atomically."""
    path = Path(path)
    data = arpa_text(model).encode("utf-8")
    with atomic_output(path) as tmp:
        tmp.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_arpa(path: str | os.PathLike) -> NGramModel:
    """Parse an ARPA file (plain or .gz); malformed content raises LMError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"{path}: LM file not found")
    declared: dict[int, int] = {}
    model: NGramModel | None = None
    section = None  # "data", an order, or "end"
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = "data"
                    continue
                if line == "\\end\\":
                    section = "end"
                    break
                if line.startswith("\\") and line.endswith("-grams:"):
                    try:
                        section = int(line[1:-len("-grams:")])
                    except ValueError:
                        raise LMError(f"{path}:{lineno}: bad section header {line!r}") from None
                    if model is None:
                        if not declared:
                            raise LMError(f"{path}:{lineno}: n-grams before the \\data\\ counts")
                        order = max(declared)
                        model = NGramModel(order, [dict() for _ in range(order + 1)],
                                           [dict() for _ in range(order + 1)])
                    if section not in declared:
                        raise LMError(f"{path}:{lineno}: section {line!r} not declared in \\data\\")
                    continue
                if section == "data":
                    if not line.startswith("ngram ") or "=" not in line:
                        raise LMError(f"{path}:{lineno}: expected 'ngram N=count', got {line!r}")
                    n, count = line[6:].split("=", 1)
                    try:
                        declared[int(n)] = int(count)
                    except ValueError:
                        raise LMError(f"{path}:{lineno}: expected 'ngram N=count', got {line!r}") from None
                    continue
                if not isinstance(section, int) or model is None:
                    if section is None and not declared:
                        continue  # text before \data\ is a comment
                    raise LMError(f"{path}:{lineno}: unexpected line {line!r}")
                fields = line.split()
                n = section
                if len(fields) not in (n + 1, n + 2):
                    raise LMError(f"{path}:{lineno}: expected a log10 probability, {n} words and an optional "
                                  f"backoff, got {line!r}")
                try:
                    prob = float(fields[0])
                    backoff = float(fields[n + 1]) if len(fields) == n + 2 else None
                except ValueError:
                    raise LMError(f"{path}:{lineno}: not a number in {line!r}") from None
                gram = tuple(fields[1: n + 1])
                model.probs[n][gram] = prob
                if backoff is not None:
                    model.backoffs[n][gram] = backoff
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise LMError(f"{path}: unreadable LM file ({e})") from None
    if model is None or section != "end":
        raise LMError(f"{path}: not a complete ARPA file (no \\data\\ section, n-grams or \\end\\)")
    for n, count in declared.items():
        if len(model.probs[n]) != count:
            raise LMError(f"{path}: \\data\\ declares {count} {n}-grams, the file has {len(model.probs[n])}")
    if (UNK,) not in model.probs[1]:
        model.probs[1][(UNK,)] = LOG10_ZERO  # as KenLM does for an ARPA without <unk>
    return model


def arpa_words(path: str | os.PathLike) -> list[str]:
    """The unigrams of an ARPA file (plain or .gz), in file order, without parsing the rest."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"{path}: LM file not found")
    words, inside = [], False
    try:
        with _open_text(path) as f:
            for line in f:
                line = line.strip()
                if line == "\\1-grams:":
                    inside = True
                elif inside and line.startswith("\\"):
                    break
                elif inside and line:
                    fields = line.split()
                    if len(fields) >= 2:
                        words.append(fields[1])
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise LMError(f"{path}: unreadable LM file ({e})") from None
    if not words:
        raise LMError(f"{path}: no \\1-grams: section; is it an ARPA file?")
    return words


def check_vocabulary(path: str | os.PathLike, words: Iterable[str], characters: str = CHARACTERS) -> str:
    """The LM's unit ("word" or "char"); raises LMError listing the words that use characters
    outside the acoustic model's alphabet (a decoder could never produce them)."""
    allowed = set(characters.replace(" ", "")) | {WORD_SEPARATOR}
    tokens = [w for w in words if w not in SPECIAL]
    unit = "char" if tokens and all(len(w) == 1 for w in tokens) and WORD_SEPARATOR in tokens else "word"
    if unit == "word":
        allowed.discard(WORD_SEPARATOR)
    bad = sorted({w for w in tokens if any(c not in allowed for c in w)})
    if bad:
        shown = ", ".join(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise LMError(f"{path}: {len(bad)} word(s) use characters outside the alphabet "
                      f"{characters.strip()!r}: {shown} (upper-case the LM text, or rebuild it with `ds2 lm build`)")
    return unit


def context_sums(model: NGramModel) -> dict[tuple[str, ...], float]:
    """sum over the vocabulary of p(w | h), for every context h in the model (and the empty one)."""
    predicted = [w for w in model.vocabulary if w != BOS]
    contexts = [()] + [g for n in range(1, model.order) for g in model.backoffs[n]]
    return {h: sum(10 ** model.log10_prob(w, h) for w in predicted) for h in contexts}


def perplexity(model: NGramModel, sentences: Iterable[Sequence[str]]) -> float:
    """Per-token perplexity (</s> included, as KenLM's ``query`` counts it)."""
    total, count = 0.0, 0
    for tokens in sentences:
        context: list[str] = [BOS]
        for word in [*tokens, EOS]:
            total += model.log10_prob(word, context)
            context.append(word)
            count += 1
    return 10 ** (-total / max(count, 1))


# --------------------------------------------------------------------------- build

def build_lm(text_files: Sequence[str | os.PathLike], out: str | os.PathLike, order: int = 3,
             prune: Sequence[int] = (), unit: str = "word", exclude: Iterable[str] = (),
             extra_sentences: Iterable[str] = (), binary: bool = True) -> dict:
    """``ds2 lm build``: normalised text -> ARPA (and a KenLM binary when a tool exists).

    Returns a report: sentences, tokens, n-gram counts, discounts, paths."""
    out = Path(out)
    excluded = set(exclude)
    sentences, stats = read_lm_text(text_files, excluded) if text_files else ([], {"lines": 0, "skipped": 0,
                                                                                "excluded": 0})
    for sentence in extra_sentences:
        if sentence in excluded:
            stats["excluded"] += 1
        else:
            sentences.append(sentence)
    if not sentences:
        raise LMError("no sentence to build an LM from")
    tokenized = [tokenize(s, unit) for s in sentences]
    model = estimate(tokenized, order, prune)
    write_arpa(model, out)
    report = {"arpa": str(out), "unit": unit, "order": order, "sentences": len(sentences),
              "tokens": sum(len(t) for t in tokenized), "text_lines": stats["lines"],
              "skipped_lines": stats["skipped"], "excluded_lines": stats["excluded"],
              "ngrams": {n: len(model.probs[n]) for n in range(1, order + 1)},
              "discounts": {n: [round(d, 4) for d in model.discounts[n]] for n in range(1, order + 1)}}
    report["binary"] = str(to_binary(out)) if binary else None
    return report


def to_binary(arpa: str | os.PathLike) -> Path | None:
    """Convert to KenLM's binary format with ``build_binary`` when it is installed (faster to
    load); otherwise None, and the ARPA file is used as it is."""
    tool = shutil.which("build_binary")
    if tool is None:
        print(f"lm: KenLM's build_binary is not installed; {arpa} is used as it is (ARPA)", file=sys.stderr)
        return None
    arpa = Path(arpa)
    binary = arpa.with_name(arpa.name.removesuffix(".gz").removesuffix(".arpa") + ".bin")
    try:
        with atomic_output(binary) as tmp:
            subprocess.run([tool, str(arpa), str(tmp)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise LMError(f"{arpa}: build_binary failed: {e.stderr.strip()[-500:]}") from None
    return binary


# --------------------------------------------------------------------------- OpenSLR LMs

LIBRISPEECH_LM_URL = "https://www.openslr.org/resources/11/"
LIBRISPEECH_LM_FILES = ("3-gram.pruned.1e-7.arpa.gz", "3-gram.pruned.3e-7.arpa.gz", "4-gram.arpa.gz",
                        "librispeech-vocab.txt")


def check_gzip(path: Path) -> None:
    """Read a .gz file to its end: gzip's CRC-32 and length trailer catch a corrupt or
    truncated file (OpenSLR publishes no checksums for resource 11)."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise LMError(f"{path}: corrupt or truncated gzip file ({e}); delete it and download again") from None


def download_librispeech_lm(root: str | os.PathLike, files: Sequence[str] = LIBRISPEECH_LM_FILES,
                            base_url: str | None = None, checksums: str | os.PathLike | None = None,
                            retries: int = 5, backoff: float = 1.0, timeout: float = 60.0) -> dict[str, Path]:
    """``ds2 lm download librispeech``: OpenSLR resource 11's LMs into ``root``.

    The machinery of ``ds2 data librispeech``: ``.part`` files resumed with Range requests
    after a cut connection, MD5 verification against ``checksums`` (``md5  name`` lines)
    when given, files renamed into place only when complete. Every .gz is also read to the
    end so that gzip's own CRC-32 rejects a corrupt file. Returns {file name: path}."""
    from .data.download import download, read_checksums

    unknown = [f for f in files if f not in LIBRISPEECH_LM_FILES]
    if unknown:
        raise LMError(f"unknown LibriSpeech LM file(s) {', '.join(unknown)}; "
                      f"choose from {', '.join(LIBRISPEECH_LM_FILES)}")
    base = (base_url or LIBRISPEECH_LM_URL).rstrip("/") + "/"
    sums = read_checksums(checksums) if checksums else {}
    root = Path(root)
    out = {}
    for name in files:
        dest = root / name
        fresh = not dest.exists()
        download(base + name, dest, sums.get(name), retries=retries, timeout=timeout, desc=name, backoff=backoff)
        if name.endswith(".gz") and fresh:
            try:
                check_gzip(dest)
            except LMError:
                dest.unlink(missing_ok=True)
                raise
        out[name] = dest
    return out
