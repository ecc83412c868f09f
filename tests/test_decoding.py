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
