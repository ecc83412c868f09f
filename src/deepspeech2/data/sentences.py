"""Deterministic generator of short English sentences for the synthetic mini corpus.

Sentences come from templates whose ``{slot}`` fields are filled from word lists:
home and device commands, spelled-out numbers, times, dates, people, places,
colours and simple everyday statements. The output uses only the recognizer's
alphabet (upper-case A-Z, apostrophe, single spaces), so it needs no normalisation.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import cache

from deepspeech2.text import number_to_words, ordinal_to_words

MIN_WORDS = 3
MAX_WORDS = 10


def _numbers(low: int, high: int) -> tuple[str, ...]:
    return tuple(number_to_words(n) for n in range(low, high + 1))


def _times() -> tuple[str, ...]:
    hours = [number_to_words(h) for h in range(1, 13)]
    times = ["NOON", "MIDNIGHT"]
    for hour in hours:
        times += [f"{hour} O'CLOCK", f"{hour} THIRTY", f"{hour} FIFTEEN", f"{hour} FORTY FIVE",
                  f"HALF PAST {hour}", f"QUARTER PAST {hour}", f"QUARTER TO {hour}"]
    return tuple(times)


WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
MONTHS = ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST",
          "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER")
FIRST_NAMES = (
    "MARY", "JOHN", "JAMES", "PATRICIA", "ROBERT", "JENNIFER", "MICHAEL", "LINDA", "WILLIAM",
    "ELIZABETH", "DAVID", "BARBARA", "RICHARD", "SUSAN", "JOSEPH", "JESSICA", "THOMAS", "SARAH",
    "CHARLES", "KAREN", "DANIEL", "NANCY", "MATTHEW", "LISA", "ANTHONY", "BETTY", "MARK",
    "HELEN", "PAUL", "SANDRA", "STEVEN", "DONNA", "ANDREW", "CAROL", "PETER", "EMMA", "GEORGE",
    "ANNA", "HENRY", "LUCY", "OLIVER", "SOPHIE", "JACK", "GRACE", "SAM", "KATE",
)
SURNAMES = (
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "MILLER", "DAVIS", "WILSON", "ANDERSON",
    "TAYLOR", "MOORE", "MARTIN", "JACKSON", "THOMPSON", "WHITE", "HARRIS", "CLARK", "LEWIS",
    "ROBINSON", "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT", "SCOTT", "GREEN", "BAKER",
    "ADAMS", "NELSON", "HILL", "CAMPBELL", "MITCHELL", "CARTER", "MORGAN", "COOPER", "HUGHES",
)
CITIES = (
    "LONDON", "PARIS", "BOSTON", "CHICAGO", "DENVER", "SEATTLE", "DALLAS", "MADRID", "BERLIN",
    "ROME", "TORONTO", "SYDNEY", "DUBLIN", "VIENNA", "TOKYO", "ATLANTA", "PHOENIX", "HOUSTON",
    "OXFORD", "EDINBURGH", "GLASGOW", "MANCHESTER", "LISBON", "AMSTERDAM", "MIAMI", "PORTLAND",
)
ROOMS = ("KITCHEN", "BEDROOM", "BATHROOM", "GARAGE", "OFFICE", "HALLWAY", "GARDEN",
         "LIVING ROOM", "DINING ROOM", "BASEMENT", "ATTIC", "NURSERY")
DEVICES = ("LIGHTS", "LAMP", "HEATER", "FAN", "TELEVISION", "RADIO", "OVEN", "DISHWASHER",
           "WASHING MACHINE", "COFFEE MACHINE", "AIR CONDITIONER", "SPEAKERS", "KETTLE",
           "PRINTER", "COMPUTER")
COLOURS = ("RED", "BLUE", "GREEN", "YELLOW", "ORANGE", "PURPLE", "PINK", "WHITE", "BLACK",
           "BROWN", "GREY", "SILVER", "GOLD")
# Singular only: templates say "THIS {object} IS".
OBJECTS = ("BOOK", "KEY", "UMBRELLA", "BAG", "PHONE", "WALLET", "JACKET", "HAT", "SCARF",
           "SUITCASE", "BICYCLE", "LAPTOP", "CUP", "COAT", "WATCH", "TICKET", "PASSPORT")
FURNITURE = ("TABLE", "CHAIR", "SOFA", "SHELF", "BED", "DESK", "FLOOR", "WINDOW SILL", "CUPBOARD")
FOODS = ("BREAD", "MILK", "EGGS", "APPLES", "BANANAS", "CHEESE", "BUTTER", "RICE", "PASTA",
         "TOMATOES", "COFFEE", "TEA", "SUGAR", "ORANGES", "CHICKEN", "SOUP", "POTATOES",
         "CARROTS", "YOGHURT", "ORANGE JUICE", "CHOCOLATE", "FLOUR", "ONIONS")
ANIMALS = ("DOG", "CAT", "BIRD", "HORSE", "RABBIT", "PUPPY", "KITTEN", "PARROT")
PLURAL_ANIMALS = ("DOGS", "CATS", "BIRDS", "HORSES", "RABBITS", "PUPPIES", "KITTENS", "DUCKS")
PRODUCE = ("EGGS", "APPLES", "BANANAS", "TOMATOES", "ORANGES", "POTATOES", "CARROTS", "ONIONS",
           "LEMONS", "PEARS")
GENRES = ("JAZZ", "ROCK", "CLASSICAL", "COUNTRY", "FOLK", "BLUES", "PIANO", "DANCE", "RELAXING")
TASKS = ("BUY MILK", "CALL MY MOTHER", "WATER THE PLANTS", "PAY THE RENT", "FEED THE CAT",
         "TAKE OUT THE RUBBISH", "WALK THE DOG", "BOOK A DENTIST APPOINTMENT", "CHECK THE POST",
         "CLEAN THE KITCHEN", "SEND THE REPORT", "PICK UP THE CHILDREN", "RENEW MY PASSPORT",
         "CHARGE MY PHONE", "LOCK THE BACK DOOR", "BUY A BIRTHDAY CARD")
ADJECTIVES = ("BIG", "SMALL", "OLD", "NEW", "HEAVY", "LIGHT", "CHEAP", "EXPENSIVE", "CLEAN",
              "DIRTY", "WARM", "COLD", "QUIET", "LOUD", "BEAUTIFUL", "BROKEN")
PARTS_OF_DAY = ("IN THE MORNING", "IN THE AFTERNOON", "IN THE EVENING", "AT NIGHT")
# Only future days: templates use them with "will", "going to" and commands.
RELATIVE_DAYS = ("TODAY", "TOMORROW", "TONIGHT", "THIS WEEKEND", "NEXT WEEK", "THIS EVENING",
                 "THIS AFTERNOON")

SLOTS: dict[str, tuple[str, ...]] = {
    "weekday": WEEKDAYS,
    "month": MONTHS,
    "first": FIRST_NAMES,
    "last": SURNAMES,
    "city": CITIES,
    "room": ROOMS,
    "device": DEVICES,
    "colour": COLOURS,
    "object": OBJECTS,
    "furniture": FURNITURE,
    "food": FOODS,
    "animal": ANIMALS,
    "animals": PLURAL_ANIMALS,
    "produce": PRODUCE,
    "genre": GENRES,
    "task": TASKS,
    "adjective": ADJECTIVES,
    "part": PARTS_OF_DAY,
    "day": RELATIVE_DAYS,
    "onoff": ("ON", "OFF"),
    "time": _times(),
    "minutes": _numbers(2, 59),
    "count": _numbers(2, 12),
    "degrees": _numbers(15, 30),
    "percent": tuple(number_to_words(n) for n in range(10, 100, 10)),
    "ordinal": tuple(ordinal_to_words(n) for n in range(1, 32)),
    "year": tuple(f"NINETEEN {number_to_words(n)}" for n in range(50, 100))
    + tuple(f"TWENTY {number_to_words(n)}" for n in range(10, 30)),
}

TEMPLATES: tuple[str, ...] = (
    # Home and device commands.
    "TURN {onoff} THE {room} {device}",
    "TURN THE {device} {onoff} IN THE {room}",
    "PLEASE SWITCH {onoff} THE {device}",
    "SET A TIMER FOR {minutes} MINUTES",
    "SET THE OVEN TIMER FOR {minutes} MINUTES",
    "WAKE ME UP AT {time} {day}",
    "SET AN ALARM FOR {time} ON {weekday}",
    "SET THE {room} TEMPERATURE TO {degrees} DEGREES",
    "DIM THE {room} LIGHTS TO {percent} PERCENT",
    "CHANGE THE {room} LIGHTS TO {colour}",
    "PLAY SOME {genre} MUSIC IN THE {room}",
    "TURN THE VOLUME DOWN IN THE {room}",
    "OPEN THE {room} WINDOW",
    "CLOSE THE {room} DOOR PLEASE",
    "START THE {device} AT {time}",
    # Calls, messages, reminders, calendar.
    "CALL {first} {last} ON {weekday}",
    "CALL {first} ON {weekday} {part}",
    "SEND A MESSAGE TO {first} {last}",
    "TELL {first} I'LL BE THERE AT {time}",
    "REMIND ME TO {task} {day}",
    "REMIND ME TO {task} ON {weekday}",
    "REMIND ME TO {task} AT {time}",
    "ADD {food} TO MY SHOPPING LIST",
    "ADD {count} {produce} TO THE LIST",
    "BOOK A TABLE FOR {count} AT {time}",
    "MOVE MY MEETING WITH {first} TO {weekday}",
    "THE MEETING WITH {first} {last} IS ON {weekday}",
    "MY BIRTHDAY IS ON THE {ordinal} OF {month}",
    "{first}'S BIRTHDAY IS ON THE {ordinal} OF {month}",
    "THE PARTY IS ON {weekday} THE {ordinal}",
    "WE MOVED TO {city} IN {year}",
    "{first} WAS BORN IN {city} IN {year}",
    # Questions.
    "WHAT'S THE WEATHER LIKE IN {city} {day}",
    "WHAT TIME IS IT IN {city}",
    "HOW LONG DOES IT TAKE TO DRIVE TO {city}",
    "WHEN DOES THE TRAIN TO {city} LEAVE",
    "IS IT GOING TO RAIN IN {city} {day}",
    "WHERE DID I PUT MY {object}",
    "HAVE YOU SEEN {first}'S {colour} {object}",
    # Simple everyday statements.
    "THE TRAIN TO {city} LEAVES AT {time}",
    "IT IS {degrees} DEGREES IN {city} TODAY",
    "{first} {last} LIVES IN {city}",
    "{first} BOUGHT A NEW {colour} {object} IN {city}",
    "THE {colour} {object} IS ON THE {furniture}",
    "I LEFT MY {object} ON THE {furniture}",
    "I CAN'T FIND MY {colour} {object}",
    "DON'T FORGET YOUR {object} {day}",
    "{first}'S {animal} IS SLEEPING IN THE {room}",
    "THE {animal} IS UNDER THE {furniture}",
    "{first}'S {colour} {object} IS VERY {adjective}",
    "THIS {object} IS TOO {adjective}",
    "WE NEED {food} AND {food} FOR DINNER",
    "{first} AND {first} ARE GOING TO {city} ON {weekday}",
    "THE SHOP CLOSES AT {time} ON {weekday}",
    "OUR FLIGHT TO {city} IS ON THE {ordinal} OF {month}",
    "I'D LIKE A CUP OF TEA {part}",
    "{first} IS PAINTING THE {room} {colour}",
    "THERE ARE {count} {animals} IN THE GARDEN",
)

_SLOT = re.compile(r"\{(\w+)\}")


@cache
def vocabulary() -> frozenset[str]:
    """Every word that ``generate_sentences`` can produce (possessive forms included)."""
    words: set[str] = set()
    for template in TEMPLATES:
        words.update(re.sub(r"\{\w+\}[A-Z']*", " ", template).split())
        # A slot glued to a suffix ("{first}'S") makes new word forms.
        for slot, suffix in re.findall(r"\{(\w+)\}([A-Z']+)", template):
            words.update(phrase.split()[-1] + suffix for phrase in SLOTS[slot])
    for phrases in SLOTS.values():
        for phrase in phrases:
            words.update(phrase.split())
    return frozenset(words)


VOCABULARY: frozenset[str] = vocabulary()


@cache
def max_sentences() -> int:
    """Upper bound on the number of distinct sentences the templates can make."""
    total = 0
    for template in TEMPLATES:
        count, used = 1, Counter()
        for slot in _SLOT.findall(template):
            count *= len(SLOTS[slot]) - used[slot]
            used[slot] += 1
        total += count
    return total


def _fill(template: str, rng: random.Random) -> str:
    taken: dict[str, set[str]] = {}

    def pick(match: re.Match) -> str:
        # A slot used twice in one template ("{food} AND {food}") gets two different fillings.
        used = taken.setdefault(match.group(1), set())
        choice = rng.choice([p for p in SLOTS[match.group(1)] if p not in used])
        used.add(choice)
        return choice

    return _SLOT.sub(pick, template)


def generate_sentences(n: int, seed: int = 0) -> list[str]:
    """Return ``n`` unique sentences of 3-10 words, the same ones for the same seed.

    Raises ValueError when ``n`` is beyond what the templates can produce.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > max_sentences():
        raise ValueError(f"the templates make at most {max_sentences()} unique sentences, "
                         f"{n} requested")
    rng = random.Random(seed)
    seen: set[str] = set()
    sentences: list[str] = []
    misses = 0
    while len(sentences) < n:
        sentence = _fill(rng.choice(TEMPLATES), rng)
        if sentence in seen or not MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
            # Near the bound new sentences get rare; give up rather than spin forever.
            misses += 1
            if misses > 100_000:
                raise ValueError(f"could only generate {len(sentences)} unique sentences, "
                                 f"{n} requested")
            continue
        misses = 0
        seen.add(sentence)
        sentences.append(sentence)
    return sentences
