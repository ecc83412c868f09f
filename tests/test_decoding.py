from pathlib import Path

import numpy as np

from deepspeech2.decoding import collapse, greedy_decode, greedy_words
from deepspeech2.text import Alphabet


def one_hot_log_probs(path: list[int], classes: int = 29) -> np.ndarray:
    lp = np.full((len(path), classes), -20.0, dtype=np.float32)
    lp[np.arange(len(path)), path] = 0.0
    return lp


def test_greedy_collapses_repeats_and_removes_blanks():
    alphabet = Alphabet("last")
    b = alphabet.blank_id
    h, e, ll, o = (alphabet.encode(c)[0] for c in "HELO")
    path = [b, h, h, e, b, ll, ll, b, ll, o, o, b]
    assert collapse(np.array(path), b)[0] == [h, e, ll, ll, o]
    lp = one_hot_log_probs(path)
    assert greedy_decode(lp[None], np.array([len(path)]), alphabet) == ["HELLO"]
    # Frames past the utterance's length are ignored.
    assert greedy_decode(lp[None], np.array([4]), alphabet) == ["HE"]


def test_blank_first_layout():
    alphabet = Alphabet("first")
    a = alphabet.encode("A")[0]
    lp = one_hot_log_probs([0, a, 0, a, a])
    assert greedy_decode(lp[None], np.array([5]), alphabet) == ["AA"]


def test_word_timings_from_alignment():
    alphabet = Alphabet("last")
    b, sp = alphabet.blank_id, alphabet.encode(" ")[0]
    h, i, y, o = (alphabet.encode(c)[0] for c in "HIYO")
    path = [b, h, h, i, b, b, sp, b, y, o, o, b]
    words = greedy_words(one_hot_log_probs(path), alphabet, frame_seconds=0.02, offset=1.0)
    assert [w.word for w in words] == ["HI", "YO"]
    assert abs(words[0].start - 1.02) < 1e-9 and abs(words[0].end - 1.08) < 1e-9
    assert abs(words[1].start - 1.16) < 1e-9 and abs(words[1].end - 1.22) < 1e-9


# --- beam search and LMs ----------------------------------------------------------------------

import pytest  # noqa: E402

from deepspeech2.decoding import (  # noqa: E402
    Decoder,
    DecoderConfig,
    DecoderConfigError,
    decode_batch,
    decoder_config_from_args,
    load_decoder_config,
    prune_frames,
    save_decoder_config,
)
from deepspeech2.lm import LMError, build_lm, estimate, write_arpa  # noqa: E402


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


def spoken(text: str, alphabet: Alphabet, rng: np.random.Generator, frames_per_char: int = 3) -> np.ndarray:
    """Peaked log-probs of ``text``: each character for a few frames, blanks in between."""
    path = []
    for char in text:
        path += [alphabet.encode(char)[0]] * frames_per_char + [alphabet.blank_id]
    logits = rng.normal(0, 1, (len(path), len(alphabet)))
    logits[np.arange(len(path)), path] += 12
    return log_softmax(logits)


def with_tie(lp: np.ndarray, frames: slice, a: int, b: int) -> np.ndarray:
    """Make labels ``a`` and ``b`` (almost) equally likely on ``frames``, ``b`` slightly ahead."""
    lp = lp.copy()
    lp[frames, a] = np.log(0.48)
    lp[frames, b] = np.log(0.50)
    return lp


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    out = tmp_path_factory.mktemp("lms")
    text = out / "text.txt"
    text.write_text("\n".join(["THE CAT SAT ON THE MAT", "A CAT SAT", "MY CAT IS BLACK", "THE DOG SAT"] * 5) + "\n")
    return {"char": build_lm([text], out / "char.arpa", order=6, unit="char")["arpa"],
            "word": build_lm([text], out / "word.arpa", order=3, unit="word")["arpa"]}


def test_beam_without_lm_equals_greedy_on_peaked_posteriors():
    alphabet = Alphabet("last")
    rng = np.random.default_rng(0)
    texts = ["HELLO WORLD", "IT'S A TEST", "ABBA", "ZZ TOP", "Q"]
    lps = [spoken(t, alphabet, rng) for t in texts]
    width = max(len(lp) for lp in lps)
    batch = np.stack([np.pad(lp, ((0, width - len(lp)), (0, 0))) for lp in lps])
    lengths = np.array([len(lp) for lp in lps])
    beam = Decoder(DecoderConfig(type="beam", beam_width=16), alphabet)
    assert beam.decode(batch, lengths) == greedy_decode(batch, lengths, alphabet) == texts
    assert decode_batch(batch, lengths, alphabet) == texts  # greedy when no decoder is given


@pytest.mark.parametrize("unit", ["char", "word"])
def test_lm_flips_an_acoustic_tie_to_the_in_vocabulary_word(lms, unit):
    alphabet = Alphabet("last")
    lp = spoken("THE CAT SAT", alphabet, np.random.default_rng(1))
    t_frames = slice(4 * 6, 4 * 6 + 3)  # the T of CAT: character 6, 4 frames per character (3 + a blank)
    tied = with_tie(lp, t_frames, alphabet.encode("T")[0], alphabet.encode("B")[0])  # the acoustics prefer CAB
    assert greedy_decode(tied[None], np.array([len(tied)]), alphabet) == ["THE CAB SAT"]
    cfg = DecoderConfig(type="beam", lm=lms[unit], alpha=1.0, beta=0.0, beam_width=16)
    assert Decoder(cfg, alphabet).decode(tied[None], np.array([len(tied)])) == ["THE CAT SAT"]


def test_char_lm_keeps_words_outside_any_word_list_possible(lms):
    alphabet = Alphabet("last")
    lp = spoken("THE ZORG SAT", alphabet, np.random.default_rng(2))
    cfg = DecoderConfig(type="beam", lm=lms["char"], alpha=0.5, beta=0.0, beam_width=32)
    assert Decoder(cfg, alphabet).decode(lp[None], np.array([len(lp)])) == ["THE ZORG SAT"]


def test_word_timings_come_from_the_beam_path(lms):
    alphabet = Alphabet("last")
    lp = spoken("A CAT", alphabet, np.random.default_rng(3), frames_per_char=2)
    words = Decoder(DecoderConfig(type="beam", lm=lms["char"]), alphabet).words(lp, 0.03, offset=1.0)
    assert [w.word for w in words] == ["A", "CAT"]
    # "A" is frames 0-1; "CAT" starts at the C (frame 6) and ends after the T's frames (6 + 3 * 3 - 1).
    assert words[0].start == pytest.approx(1.0) and words[0].end == pytest.approx(1.06)
    assert words[1].start == pytest.approx(1.18) and words[1].end == pytest.approx(1.0 + 14 * 0.03)


def test_frame_pruning_keeps_top_labels_up_to_the_cumulative_probability():
    lp = np.log(np.array([[0.6, 0.3, 0.05, 0.05], [0.25, 0.25, 0.25, 0.25]], dtype=np.float32))
    pruned = prune_frames(lp, top_n=3, cum_prob=0.85)
    assert (pruned[0] > -100).tolist() == [True, True, False, False]  # 0.6 + 0.3 reaches 0.85
    assert (pruned[1] > -100).tolist() == [True, True, True, False]  # top 3 at most
    assert np.allclose(pruned[pruned > -100], lp[pruned > -100])


def test_decoder_file_round_trip_and_strict_keys(lms, tmp_path):
    path = save_decoder_config(DecoderConfig(type="beam", lm=lms["char"], alpha=0.8, beta=1.5), tmp_path / "d.yaml")
    cfg = load_decoder_config(path)
    assert (cfg.type, cfg.alpha, cfg.beta, cfg.lm) == ("beam", 0.8, 1.5, str(Path(lms["char"]).resolve()))
    flags = decoder_config_from_args(str(path), beam_width=8, alpha=0.2)
    assert (flags.beam_width, flags.alpha, flags.beta) == (8, 0.2, 1.5)
    assert decoder_config_from_args(beam_width=4).type == "beam" and decoder_config_from_args().type == "greedy"
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: beam\nalpah: 0.5\n")
    with pytest.raises(DecoderConfigError, match=r"bad.yaml: unknown key\(s\) alpah"):
        load_decoder_config(bad)
    bad.write_text("type: beam\nalpha: 42\n")
    with pytest.raises(DecoderConfigError, match=r"bad.yaml: alpha=42.0 out of range \[0.0, 10.0\]"):
        load_decoder_config(bad)
    bad.write_text("type: beam\nbeam_width: wide\n")
    with pytest.raises(DecoderConfigError, match="bad.yaml: beam_width must be an integer"):
        load_decoder_config(bad)
    with pytest.raises(DecoderConfigError, match="missing.yaml: decoder file not found"):
        load_decoder_config(tmp_path / "missing.yaml")


def test_bad_lms_are_named(tmp_path):
    alphabet = Alphabet("last")
    with pytest.raises(DecoderConfigError, match="nope.arpa: LM file not found"):
        Decoder(DecoderConfig(type="beam", lm=str(tmp_path / "nope.arpa")), alphabet)
    lower = write_arpa(estimate([["the", "cat"], ["a", "cat"]], 2), tmp_path / "lower.arpa")
    with pytest.raises(LMError, match="lower.arpa: 3 word\\(s\\) use characters outside the alphabet.*a, cat, the"):
        Decoder(DecoderConfig(type="beam", lm=str(lower)), alphabet)
    garbage = tmp_path / "garbage.arpa"
    garbage.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tA\n-1\t|\n-1\t<s>\n\\end\\\n")
    with pytest.raises(LMError, match="garbage.arpa: KenLM cannot load it"):
        Decoder(DecoderConfig(type="beam", lm=str(garbage)), alphabet)
