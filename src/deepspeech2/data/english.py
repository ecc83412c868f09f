"""The ``english`` recipe's data: real recordings plus a varied synthetic corpus.

Training mixes three real sets (speechocean762 train, AN4 train, FSDD train: about 3.7 h
from 300 speakers) with synthetic speech from every offline English voice here (flite,
festival, espeak-ng dialects x variants, Piper's neural voice when installed) reading
templated sentences and real prose (the LJ Speech sentences, normalised). Evaluation sets
are speechocean762 test (unseen real speakers), FSDD's test split, the synthetic test set
and its unseen voice, and the Asterisk prompts when installed (evaluation only).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .an4 import build_an4_manifests
from .asterisk import INSTALL_HINT as ASTERISK_HINT
from .asterisk import TEXTS as ASTERISK_TEXTS
from .asterisk import build_asterisk_manifest
from .formats import read_any_manifest
from .fsdd import build_fsdd_manifests
from .manifest import write_manifest
from .mini import ENGLISH_VOICES, build_mini_corpus
from .speechocean762 import build_speechocean762_manifests

PROSE = "text/ljspeech_sentences.txt"
# Prose sentences up to 20 words and 150 characters (about 8 s): 8,850 of the 12,931.
PROSE_MAX_WORDS, PROSE_MAX_CHARS = 20, 150


def prepare_english(out: str | Path, shared: str | Path, num_templated: int = 2000, num_prose: int = 2500,
                    num_test: int = 200, num_dev: int = 100, fsdd_dev: int = 60, real_repeat: int = 2,
                    jobs: int | None = None, asterisk: bool = True) -> dict[str, Path]:
    """Build every manifest under ``out``; returns ``{"train", "dev", <test set>...}``.

    ``shared``: a folder with ``speechocean762/``, ``an4/``, ``fsdd/`` and ``text/`` (as
    ``../shared/data``). The synthetic corpora reuse what an earlier run left on disk.
    ``real_repeat``: speechocean762 and AN4 appear this many times per epoch (each time
    augmented differently), so real sentences weigh more than synthetic ones.
    """
    out, shared = Path(out), Path(shared)
    manifests = out / "manifests"
    missing = [name for name in ("speechocean762", "an4", "fsdd") if not (shared / name).is_dir()]
    if missing:
        raise SystemExit(f"recipe english: {shared} lacks {', '.join(missing)}; give --data DIR with the real "
                         "corpora (ds2 data speechocean762 / an4 / fsdd --download fetch them)")
    so762 = build_speechocean762_manifests(shared / "speechocean762", manifests / "speechocean762")
    an4 = build_an4_manifests(shared / "an4", manifests / "an4")
    fsdd = build_fsdd_manifests(shared / "fsdd", manifests / "fsdd")
    templated = build_mini_corpus(out / "corpus", num_train=num_templated, num_dev=num_dev, num_test=num_test,
                                  num_test_unseen=num_test, voices=ENGLISH_VOICES, jobs=jobs)
    prose_file = shared / PROSE
    prose = build_mini_corpus(out / "corpus-prose", text_file=prose_file, num_train=num_prose, num_dev=0,
                              num_test=num_test, num_test_unseen=0, voices=ENGLISH_VOICES, jobs=jobs, seed=1,
                              max_words=PROSE_MAX_WORDS, max_chars=PROSE_MAX_CHARS)

    real = [u for m in (so762["train"], an4["train"]) for u in read_any_manifest(m)]
    train = real * max(1, real_repeat) + [u for m in (fsdd["train"], templated["train"], prose["train"])
                                          for u in read_any_manifest(m)]
    dev = [*read_any_manifest(so762["dev"]), *read_any_manifest(an4["dev"]),
           *read_any_manifest(fsdd["dev"])[::max(1, 180 // max(1, fsdd_dev))][:fsdd_dev],
           *read_any_manifest(templated["dev"])]
    paths: dict[str, Path] = {
        "train": write_manifest(manifests / "train.jsonl", train),
        "dev": write_manifest(manifests / "dev.jsonl", dev),
        "speechocean762-test": so762["test"],
        "fsdd-test": fsdd["test"],
        "synthetic-test": templated["test"],
        "synthetic-test-unseen-voice": templated["test-unseen-voice"],
        "synthetic-prose-test": prose["test"],
    }
    hours = sum(u.duration for u in train) / 3600
    print(f"english train: {len(train)} utterances, {hours:.2f} h; dev: {len(dev)} utterances")
    if asterisk:
        if Path(ASTERISK_TEXTS).is_file():
            paths["asterisk"], _ = build_asterisk_manifest(manifests / "asterisk.jsonl")
        else:
            print(f"recipe english: the Asterisk evaluation set is not installed; for it: {ASTERISK_HINT}",
                  file=sys.stderr)
    return paths
