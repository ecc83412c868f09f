import pytest

from deepspeech2.text import Alphabet, normalize_text, number_to_words, ordinal_to_words


def test_normalisation_of_case_punctuation_and_whitespace():
    assert normalize_text("  Hello,   world!  It's\tfine. ") == "HELLO WORLD IT'S FINE"
    assert normalize_text("“Well”—said he; (quietly)…") == "WELL SAID HE QUIETLY"
    assert normalize_text("café naïve") == "CAFE NAIVE"


def test_quotes_are_not_apostrophes_but_contractions_are():
    assert normalize_text("'quoted' words don't change") == "QUOTED WORDS DON'T CHANGE"


def test_numbers_are_spelled_out():
    assert number_to_words(0) == "ZERO"
    assert number_to_words(42) == "FORTY TWO"
    assert number_to_words(1984) == "ONE THOUSAND NINE HUNDRED EIGHTY FOUR"
    assert number_to_words(2_000_005) == "TWO MILLION FIVE"
    assert ordinal_to_words(21) == "TWENTY FIRST"
    assert ordinal_to_words(30) == "THIRTIETH"
    assert normalize_text("I have 3 cats and 1,200 fish") == "I HAVE THREE CATS AND ONE THOUSAND TWO HUNDRED FISH"
    assert normalize_text("on the 2nd of May at 3.5%") == "ON THE SECOND OF MAY AT THREE POINT FIVE PERCENT"


def test_digits_rejected_when_not_spelled():
    with pytest.raises(ValueError, match="digits"):
        normalize_text("call 911", spell_numbers=False)


def test_characters_outside_the_alphabet_are_named():
    with pytest.raises(ValueError, match="'@'"):
        normalize_text("mail me @ home")
    with pytest.raises(ValueError, match="U\\+4E2D"):
        normalize_text("中文")


@pytest.mark.parametrize("blank", ["first", "last"])
def test_encode_decode_round_trip(blank):
    alphabet = Alphabet(blank)
    assert len(alphabet) == 29 and len(alphabet.labels) == 29
    text = "IT'S A QUICK BROWN FOX"
    ids = alphabet.encode(text)
    assert alphabet.blank_id not in ids
    assert alphabet.decode(ids) == text
    assert alphabet.labels[alphabet.blank_id] == "_"


def test_blank_position_matches_the_reference_models():
    assert Alphabet("last").labels[-1] == "_" and Alphabet("last").labels[0] == "'"
    assert Alphabet("first").labels[0] == "_" and Alphabet("first").blank_id == 0
    with pytest.raises(ValueError, match="first' or 'last"):
        Alphabet("middle")
