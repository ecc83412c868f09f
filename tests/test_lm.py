"""The ARPA estimator (modified Kneser-Ney), its checks, KenLM loading, and the LM download."""

from __future__ import annotations

import gzip
import hashlib
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from deepspeech2.cli import main
from deepspeech2.lm import (
    BOS,
    EOS,
    UNK,
    LMError,
    build_lm,
    check_vocabulary,
    context_sums,
    download_librispeech_lm,
    estimate,
    perplexity,
    read_arpa,
    tokenize,
    write_arpa,
)

WORDS = ("THE CAT DOG SAT ON A MAT RUG RAN TO HOME AND BIG SMALL RED BLUE OLD NEW HOUSE TREE "
         "BIRD SANG SONG AT NIGHT DAY").split()


def zipf_sentences(n: int, seed: int) -> list[list[str]]:
    """Sentences with Zipf-like word frequencies and some local structure, so that counts
    of 1, 2, 3 and 4+ all occur at every order (real discounts, not the fallback)."""
    rng = random.Random(seed)
    words = [w + suffix for suffix in ("", "S", "ED", "ING") for w in WORDS]
    weights = [1 / (k + 1) for k in range(len(words))]
    out = []
    for _ in range(n):
        sentence = [rng.choices(words, weights)[0]]
        for _ in range(rng.randint(1, 9)):
            # Half the time the next word is tied to the previous one.
            prev = words.index(sentence[-1])
            sentence.append(words[(prev * 7 + 3) % len(words)] if rng.random() < 0.5
                            else rng.choices(words, weights)[0])
        out.append(sentence)
    return out


def independent_mkn(sentences: list[list[str]], order: int):
    """Interpolated modified Kneser-Ney straight from the definition (Chen & Goodman; the
    continuation counts of lmplz), as a recursive function: no ARPA, no backoff weights."""
    raw = [defaultdict(int) for _ in range(order + 1)]
    for s in sentences:
        padded = [BOS, *s, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                if n == 1 and i == 0:
                    continue
                raw[n][tuple(padded[i: i + n])] += 1
    left = [defaultdict(set) for _ in range(order + 1)]
    for n in range(2, order + 1):
        for g in raw[n]:
            left[n - 1][g[1:]].add(g[0])
    adjusted = [dict() for _ in range(order + 1)]
    for n in range(1, order + 1):
        for g, c in raw[n].items():
            adjusted[n][g] = c if n == order or g[0] == BOS else len(left[n][g])
    discounts = [None]
    for n in range(1, order + 1):
        t = [sum(1 for c in adjusted[n].values() if c == k) for k in (1, 2, 3, 4)]
        y = t[0] / (t[0] + 2 * t[1])
        discounts.append((0.0, 1 - 2 * y * t[1] / t[0], 2 - 3 * y * t[2] / t[1], 3 - 4 * y * t[3] / t[2]))
    vocab = {g[0] for g in adjusted[1]} | {UNK}
    ctx_total = [defaultdict(int) for _ in range(order + 1)]
    ctx_n = [defaultdict(lambda: [0, 0, 0, 0]) for _ in range(order + 1)]
    for n in range(1, order + 1):
        for g, c in adjusted[n].items():
            ctx_total[n][g[:-1]] += c
            ctx_n[n][g[:-1]][min(c, 3)] += 1

    def prob(word: str, context: tuple[str, ...]) -> float:
        if word not in vocab:
            word = UNK
        n = len(context) + 1
        d = discounts[n]
        total = ctx_total[n].get(context, 0)
        lower = 1 / len(vocab) if n == 1 else prob(word, context[1:])
        if total == 0:
            return lower
        c = adjusted[n].get(context + (word,), 0)
        gamma = sum(d[k] * ctx_n[n][context][k] for k in (1, 2, 3)) / total
        return (c - d[min(c, 3)]) / total + gamma * lower if c else gamma * lower

    def log10p(word: str, history: list[str]) -> float:
        return math.log10(prob(word, tuple(history[-(order - 1):]) if order > 1 else ()))

    return log10p


@pytest.fixture(scope="module")
def corpus():
    return zipf_sentences(400, seed=1), zipf_sentences(60, seed=2) + [["THE", "ZEBRA", "SAT"]]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_every_context_sums_to_one(corpus, tmp_path, order):
    train = corpus[0][:150]
    for prune in ((), (0, 1, 1, 1)):
        model = read_arpa(write_arpa(estimate(train, order, prune[:order]), tmp_path / "lm.arpa"))
        sums = context_sums(model)
        assert len(sums) > 25
        worst = max(abs(s - 1) for s in sums.values())
        assert worst < 1e-4, (prune, worst)


def test_discounts_come_from_counts_of_counts(corpus):
    train, _ = corpus
    model = estimate(train, 3)
    for d in model.discounts[1:]:
        assert all(0 < d[k] < k + 1 for k in range(3))
        assert d != (0.5, 1.0, 1.5)  # Chen & Goodman's estimate, not the fallback for tiny texts


@pytest.mark.parametrize("order", [2, 3, 4])
def test_perplexity_matches_an_independent_computation(corpus, tmp_path, order):
    train, held_out = corpus
    model = read_arpa(write_arpa(estimate(train, order), tmp_path / "lm.arpa"))
    reference = independent_mkn(train, order)
    total, count = 0.0, 0
    for s in held_out:
        history = [BOS]
        for word in [*s, EOS]:
            ours = model.log10_prob(word, history)
            theirs = reference(word, history)
            assert abs(ours - theirs) < 2e-5, (word, history, ours, theirs)
            total += theirs
            count += 1
            history.append(word)
    assert perplexity(model, held_out) == pytest.approx(10 ** (-total / count), rel=1e-4)


def test_kenlm_loads_the_file_and_agrees(corpus, tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    train, held_out = corpus
    path = write_arpa(estimate(train, 3, (0, 0, 1)), tmp_path / "lm.arpa.gz")
    model = read_arpa(path)
    words = Dictionary()
    for w in [*model.vocabulary, "ZEBRA"]:
        words.add_entry(w)
    plain = tmp_path / "lm.arpa"  # KenLM reads plain ARPA
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    kenlm = KenLM(str(plain), words)
    for s in held_out[:20]:
        state, ours, theirs = kenlm.start(False), 0.0, 0.0
        history = [BOS]
        for word in s:
            state, score = kenlm.score(state, words.get_index(word))
            theirs += score
            ours += model.log10_prob(word, history)
            history.append(word)
        state, score = kenlm.finish(state)
        theirs += score
        ours += model.log10_prob(EOS, history)
        assert ours == pytest.approx(theirs, abs=1e-3)


def test_char_lm_tokens_and_build_report(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Turn on the lights.\n\nIt's 5 o'clock!\nTURN OFF THE LIGHTS\nid1\tSet a timer\n")
    report = build_lm([text], tmp_path / "char.arpa", order=5, unit="char", exclude={"TURN OFF THE LIGHTS"})
    assert report["sentences"] == 3 and report["excluded_lines"] == 1 and report["unit"] == "char"
    words = read_arpa(tmp_path / "char.arpa").vocabulary
    assert {"|", "'", "T", "F", "V", BOS, EOS, UNK} <= set(words)
    assert tokenize("IT'S FIVE", "char") == list("IT'S|FIVE")
    assert check_vocabulary(tmp_path / "char.arpa", words) == "char"


def test_bad_input_is_named(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(LMError, match="empty.txt: no usable sentence"):
        build_lm([empty], tmp_path / "lm.arpa")
    assert not (tmp_path / "lm.arpa").exists()
    with pytest.raises(LMError, match="missing.txt: LM text file not found"):
        build_lm([tmp_path / "missing.txt"], tmp_path / "lm.arpa")
    with pytest.raises(LMError, match="outside the alphabet.*caf\u00e9, hello"):
        check_vocabulary(tmp_path / "x.arpa", ["<s>", "</s>", "hello", "WORLD", "caf\u00e9"])
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n-0.5\n\\end\\\n")
    with pytest.raises(LMError, match=r"bad.arpa:6: expected a log10 probability"):
        read_arpa(bad)
    truncated = tmp_path / "truncated.arpa"
    truncated.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n-0.5\tA\n")
    with pytest.raises(LMError, match="truncated.arpa: not a complete ARPA file"):
        read_arpa(truncated)


def test_cli_build_and_its_errors(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat\nthe dog sat\n")
    assert main(["lm", "build", str(text), "--order", "2", "--out", str(tmp_path / "lm.arpa")]) == 0
    assert "2 sentences" in capsys.readouterr().out
    assert read_arpa(tmp_path / "lm.arpa").order == 2
    (tmp_path / "empty.txt").write_text("")
    assert main(["lm", "build", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e.arpa")]) == 2
    assert "empty.txt: no usable sentence" in capsys.readouterr().err


# --- ds2 lm download librispeech over 127.0.0.1 -------------------------------------------------

@pytest.fixture
def lm_server(tmp_path):
    from test_librispeech import RangeServer  # the loopback server with Range support and cuts

    served = tmp_path / "served"
    served.mkdir()
    arpa = write_arpa(estimate([w.split() for w in ("A B C", "A C", "B C A")], 2), tmp_path / "small.arpa")
    data = gzip.compress(arpa.read_bytes() + bytes(range(256)) * 2000, mtime=0)  # 0.5 MB: cut midway
    for name in ("3-gram.pruned.1e-7.arpa.gz", "3-gram.pruned.3e-7.arpa.gz", "4-gram.arpa.gz"):
        (served / name).write_bytes(data)
    (served / "librispeech-vocab.txt").write_text("\n".join(WORDS) + "\n")
    sums = tmp_path / "md5sum.txt"
    sums.write_text("".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}\n" for p in served.iterdir()))
    server = RangeServer(served)
    yield server, served, sums
    server.close()


def test_download_survives_a_cut_connection(lm_server, tmp_path):
    server, served, sums = lm_server
    size = (served / "4-gram.arpa.gz").stat().st_size
    server.cut["4-gram.arpa.gz"] = size // 3
    paths = download_librispeech_lm(tmp_path / "lm", ["4-gram.arpa.gz", "librispeech-vocab.txt"], server.url,
                                    sums, backoff=0.01)
    assert paths["4-gram.arpa.gz"].read_bytes() == (served / "4-gram.arpa.gz").read_bytes()
    ranges = [r for name, r in server.log if name == "4-gram.arpa.gz"]
    assert ranges[0] is None and ranges[1] == f"bytes={size // 3}-"
    assert not list((tmp_path / "lm").glob("*.part"))
    # A second run downloads nothing.
    before = len(server.log)
    download_librispeech_lm(tmp_path / "lm", ["4-gram.arpa.gz"], server.url, sums)
    assert len(server.log) == before


def test_download_with_a_bad_checksum_keeps_nothing(lm_server, tmp_path, capsys):
    server, served, sums = lm_server
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{'0' * 32}  3-gram.pruned.1e-7.arpa.gz\n")
    code = main(["lm", "download", "librispeech", "--root", str(tmp_path / "lm"), "--base-url", server.url,
                 "--checksums", str(wrong), "--files", "3-gram.pruned.1e-7.arpa.gz"])
    assert code == 2
    assert "3-gram.pruned.1e-7.arpa.gz" in capsys.readouterr().err
    assert not (tmp_path / "lm" / "3-gram.pruned.1e-7.arpa.gz").exists()


def test_download_rejects_a_corrupt_gzip(lm_server, tmp_path):
    server, served, _ = lm_server
    data = bytearray((served / "3-gram.pruned.3e-7.arpa.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (served / "3-gram.pruned.3e-7.arpa.gz").write_bytes(bytes(data))
    with pytest.raises(LMError, match="corrupt or truncated gzip"):
        download_librispeech_lm(tmp_path / "lm", ["3-gram.pruned.3e-7.arpa.gz"], server.url)
    assert not (tmp_path / "lm" / "3-gram.pruned.3e-7.arpa.gz").exists()


def test_downloaded_word_lm_reads_back(lm_server, tmp_path):
    server, _, sums = lm_server
    paths = download_librispeech_lm(tmp_path / "lm", ["3-gram.pruned.1e-7.arpa.gz"], server.url, sums)
    assert isinstance(paths["3-gram.pruned.1e-7.arpa.gz"], Path)
