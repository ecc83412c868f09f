from deepspeech2.metrics import ErrorRates, cer, char_edits, wer, word_edits


def test_word_error_rate_counts_substitutions_deletions_insertions():
    assert word_edits("THE CAT SAT ON THE MAT", "THE CAT SAT ON THE MAT") == (0, 6)
    assert word_edits("THE CAT SAT ON THE MAT", "THE BAT SAT ON MAT") == (2, 6)  # 1 sub + 1 del
    assert word_edits("A B", "A X B Y") == (2, 2)  # two insertions
    assert wer("A B C D", "") == 1.0


def test_character_error_rate_ignores_spaces():
    assert char_edits("AB CD", "ABCD") == (0, 4)
    assert char_edits("HELLO WORLD", "HELO WORD") == (2, 10)
    assert cer("ABC", "ABD") == 1 / 3


def test_corpus_rates_sum_edits_not_average_rates():
    rates = ErrorRates()
    assert rates.add("A", "B") == (1.0, 1.0)
    assert rates.add("A B C D", "A B C D") == (0.0, 0.0)
    # Averaging per-utterance rates would give 0.5; the corpus rate is 1 edit / 5 words.
    assert rates.wer == 1 / 5
    assert rates.cer == 1 / 5
    assert rates.utterances == 2 and rates.words == 5
