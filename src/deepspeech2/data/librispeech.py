"""LibriSpeech (OpenSLR resource 12): download, verify, extract, check, manifests.

    prepare_librispeech("data/LibriSpeech", ["dev-clean", "test-clean"])

Layout under ``root``::

    downloads/<subset>.tar.gz            archives (``.part`` while downloading)
    LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac, <spk>-<chapter>.trans.txt
    wav/<subset>/…/<id>.wav              with ``wav=True``: 16 kHz 16-bit mono
    <subset>.jsonl [.json .csv]          manifests (paths relative to root in the JSONL)
    txt/<subset>/…/<id>.txt              transcript files for the .json/.csv formats
    <subset>.report.jsonl                every utterance left out or changed, with the reason
    <subset>.prepared.json               written last: settings, counts, manifest checksums

Each subset's archive is downloaded (resumed when cut off), checked against its MD5,
extracted into a staging folder and moved into place; then every file is decoded in
parallel, so a corrupt file is found now and not in the middle of an epoch. Problems
with single utterances (no transcript line, no audio, audio that does not decode,
characters outside the alphabet) go to the report; problems with a whole subset
(checksum, unsafe or truncated archive) fail that subset only, after the others are done.
A subset whose ``.prepared.json`` matches the settings is skipped on a rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..text import normalize_text
from .download import ArchiveError, DataError, download, read_checksums, safe_extract, verify
from .formats import write_any
from .manifest import Utterance, read_manifest, write_manifest
from .stats import StreamingMap, parallel_map, probe_audio


@dataclass(frozen=True)
class Subset:
    name: str
    md5: str  # OpenSLR resource 12, md5sum.txt
    utterances: int


SUBSETS: dict[str, Subset] = {s.name: s for s in (
    Subset("dev-clean", "42e2234ba48799c1f50f24a7926300a1", 2703),
    Subset("dev-other", "c8d0bcc9cca99d4f8b62fcc847357931", 2864),
    Subset("test-clean", "32fa31d27d2e1cad72775fee3f4849a9", 2620),
    Subset("test-other", "fb5a50374b501bb3bac4815ee91d3135", 2939),
    Subset("train-clean-100", "2a93770f6d5c6c964bc36631d331a522", 28539),
    Subset("train-clean-360", "c0e676e450a7ff2f54aeade5171606fa", 104014),
    Subset("train-other-500", "d1a0fd59409feb2c614ce4d30c387708", 148688),
)}
DEFAULT_SUBSETS = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")
EVAL_SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other")
TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
MIRRORS = {
    "openslr": "https://www.openslr.org/resources/12/",
    "trmal": "https://openslr.trmal.net/resources/12/",
    "elda": "https://openslr.elda.org/resources/12/",
}
SAMPLE_RATE = 16000
_TRANSCRIPT_LINE = re.compile(r"^(\d+-\d+-\d+)(?:\s+(.*))?$")


class LibriSpeechError(DataError):
    """One or more subsets could not be prepared; the message lists them."""


@dataclass
class SubsetResult:
    subset: str
    status: str  # prepared | skipped | failed
    manifests: dict[str, Path] = field(default_factory=dict)
    in_archive: int = 0  # utterances the archive has (transcript lines and audio files)
    utterances: int = 0  # in the manifest
    hours: float = 0.0
    filtered: int = 0  # left out by the training duration filter
    problems: int = 0  # left out or changed for another reason (see the report)
    official: int | None = None  # the published count, when the archive is the published one
    report: Path | None = None
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        return self.manifests["jsonl"]


def parse_subsets(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"train-clean-100,dev-clean"`` (or a list; ``train-960`` = the three training sets)
    -> validated subset names, in order, without repeats."""
    if value is None:
        return list(DEFAULT_SUBSETS)
    names = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        expanded = TRAIN_960 if name in ("train-960", "all-train") else DEFAULT_SUBSETS if name == "default" else (
            tuple(SUBSETS) if name == "all" else (name,))
        for subset in expanded:
            if subset not in SUBSETS:
                raise ValueError(f"unknown LibriSpeech subset {subset!r}; subsets: {', '.join(SUBSETS)} "
                                 "(or train-960, all)")
            if subset not in out:
                out.append(subset)
    if not out:
        raise ValueError("no LibriSpeech subsets given")
    return out


def resolve_base_url(value: str | None) -> str:
    """A mirror name (openslr, trmal, elda) or URL -> base URL ending in ``/``."""
    if not value:
        return MIRRORS["openslr"]
    if value in MIRRORS:
        return MIRRORS[value]
    if not re.match(r"^(https?|file)://", value):
        raise ValueError(f"--base-url {value!r}: give an http(s):// URL or a mirror name ({', '.join(MIRRORS)})")
    return value if value.endswith("/") else value + "/"


def is_training_subset(name: str) -> bool:
    return name.startswith("train-")


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()




@dataclass
class _Item:
    id: str
    speaker: str
    chapter: str
    audio: Path | None
    text: str | None


def _utt_key(item: _Item) -> tuple:
    # Numeric order (speaker, chapter, utterance), as the archive lists them; names that
    # are not LibriSpeech ids go last.
    if re.fullmatch(r"\d+-\d+-\d+", item.id):
        return (0, *(int(x) for x in item.id.split("-")))
    return (1, item.id)


def scan_subset(folder: Path) -> tuple[list[_Item], list[dict]]:
    """Pair every ``*.flac`` with its ``*.trans.txt`` line; returns (items, problems).

    An item may lack its audio or its transcript; the caller reports those.
    """
    items: dict[str, _Item] = {}
    problems: list[dict] = []
    for chapter_dir in sorted(p for p in folder.glob("*/*") if p.is_dir()):
        speaker, chapter = chapter_dir.parent.name, chapter_dir.name
        transcript = chapter_dir / f"{speaker}-{chapter}.trans.txt"
        if transcript.is_file():
            for lineno, line in enumerate(transcript.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if not line.strip():
                    continue
                match = _TRANSCRIPT_LINE.match(line.strip())
                if not match:
                    problems.append({"id": None, "path": f"{transcript}:{lineno}",
                                     "problem": f"malformed transcript line {line.strip()[:60]!r}"})
                    continue
                utt_id, text = match.group(1), (match.group(2) or "").strip()
                if utt_id in items:
                    problems.append({"id": utt_id, "path": f"{transcript}:{lineno}",
                                     "problem": "transcript line repeated (the first one is used)"})
                    continue
                items[utt_id] = _Item(utt_id, speaker, chapter, None, text)
        for audio in chapter_dir.glob("*.flac"):
            item = items.get(audio.stem)
            if item is None:
                items[audio.stem] = _Item(audio.stem, speaker, chapter, audio, None)
            else:
                item.audio = audio
    return sorted(items.values(), key=_utt_key), problems


class _Preparer:
    def __init__(self, root: Path, out: Path, base_url: str, checksums: dict[str, str] | None, wav: bool,
                 formats: tuple[str, ...], min_duration: float, max_duration: float, jobs: int | None,
                 allow_download: bool, delete_archives: bool, retries: int, quiet: bool):
        self.root, self.out, self.base_url, self.checksums = root, out, base_url, checksums
        self.wav, self.formats, self.jobs = wav, formats, jobs
        self.min_duration, self.max_duration = min_duration, max_duration
        self.allow_download, self.delete_archives, self.retries, self.quiet = (
            allow_download, delete_archives, retries, quiet)
        self.cancel = threading.Event()

    # --- where things are -------------------------------------------------------------
    def archive(self, name: str) -> Path:
        return self.root / "downloads" / f"{name}.tar.gz"

    def folder(self, name: str) -> Path:
        return self.root / "LibriSpeech" / name

    def marker(self, name: str) -> Path:
        return self.out / f"{name}.prepared.json"

    def manifest_path(self, name: str, fmt: str) -> Path:
        return self.out / f"{name}.{fmt}"

    def expected_md5(self, name: str) -> str:
        if self.checksums is None:
            return SUBSETS[name].md5
        if f"{name}.tar.gz" not in self.checksums:
            raise DataError(f"the checksums file has no line for {name}.tar.gz")
        return self.checksums[f"{name}.tar.gz"]

    def settings(self, name: str) -> dict:
        train = is_training_subset(name)
        return {"wav": self.wav, "min_duration": self.min_duration if train else None,
                "max_duration": self.max_duration if train else None}

    # --- state on disk ----------------------------------------------------------------
    def done(self, name: str, md5: str | None) -> SubsetResult | None:
        """The result of an earlier prepare with the same archive and settings whose
        manifest is unchanged, writing formats requested now that it lacks; else None."""
        try:
            state = json.loads(self.marker(name).read_text())
            jsonl = self.manifest_path(name, "jsonl")
            if (state["archive_md5"] != md5 or state["settings"] != self.settings(name)
                    or state["manifests"]["jsonl"] != _sha1(jsonl)):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        manifests = {"jsonl": jsonl}
        missing = []
        for fmt in self.formats:
            path = self.manifest_path(name, fmt)
            manifests[fmt] = path
            if fmt != "jsonl" and (state["manifests"].get(fmt) is None or not path.exists()
                                   or state["manifests"][fmt] != _sha1(path)):
                missing.append(fmt)
        if missing:
            utterances = read_manifest(jsonl)
            for fmt in missing:
                write_any(manifests[fmt], utterances, fmt)
                state["manifests"][fmt] = _sha1(manifests[fmt])
            atomic_write_text(self.marker(name), json.dumps(state, indent=2) + "\n")
        counts = state["counts"]
        return SubsetResult(name, "skipped", manifests, counts["in_archive"], counts["utterances"], counts["hours"],
                            counts["filtered"], counts["problems"], state.get("official"),
                            self.out / f"{name}.report.jsonl")

    def invalidate(self, name: str) -> None:
        """Remove what says ``name`` is ready, before anything else is done to it."""
        self.marker(name).unlink(missing_ok=True)
        for fmt in ("jsonl", "json", "csv"):
            self.manifest_path(name, fmt).unlink(missing_ok=True)

    # --- stages -----------------------------------------------------------------------
    def extracted(self, name: str, md5: str | None) -> bool:
        try:
            state = json.loads((self.folder(name) / ".extracted.json").read_text())
        except (OSError, ValueError):
            return False
        return md5 is not None and state.get("md5") == md5

    def fetch(self, name: str, md5: str) -> Path:
        """Download (or find) and verify the archive; runs in the download thread."""
        archive = self.archive(name)
        if not self.allow_download:
            if not archive.exists():
                raise DataError(f"{archive} not found and downloads are off (--no-download)")
            verify(archive, md5, None if self.quiet else f"{name} (md5)")
            return archive
        return download(self.base_url + f"{name}.tar.gz", archive, md5, retries=self.retries,
                        desc=None if self.quiet else name, cancel=self.cancel)

    def extract(self, name: str, archive: Path, md5: str, seconds: dict[str, float]) -> dict[str, tuple]:
        """Extract into a staging folder, decoding each FLAC file as soon as it is out (so
        extraction and decoding overlap), then move the subset into place. Returns the
        decode results by path relative to the subset folder."""
        staging = self.root / f".extract-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        source = staging.resolve() / "LibriSpeech" / name  # as safe_extract names the files
        decoder = StreamingMap(probe_audio, self.jobs)

        def on_file(path: Path) -> None:
            if path.suffix == ".flac" and source in path.parents:
                relative = path.relative_to(source)
                wav = str(self.root / "wav" / name / relative.with_suffix(".wav")) if self.wav else None
                decoder.submit(relative.as_posix(), (str(path), wav, SAMPLE_RATE))

        try:
            t = time.time()
            files = safe_extract(archive, staging, desc=None if self.quiet else f"{name}: extract", on_file=on_file)
            seconds["extract"] = time.time() - t
            if not source.is_dir():
                raise ArchiveError(f"{archive.name}: no LibriSpeech/{name}/ folder in the archive; is it "
                                   f"the {name} archive?")
            t = time.time()
            decoded = decoder.results(None if self.quiet else f"{name}: {'decode + wav' if self.wav else 'decode'}")
            seconds["decode"] = time.time() - t
            target = self.folder(name)
            if target.exists():
                shutil.rmtree(target)  # an older, unverified or different copy
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            for extra in (staging / "LibriSpeech").iterdir():  # README.TXT, SPEAKERS.TXT…
                if extra.is_file():
                    os.replace(extra, target.parent / extra.name)
        finally:
            decoder.close()
            shutil.rmtree(staging, ignore_errors=True)
        atomic_write_text(target / ".extracted.json", json.dumps({"md5": md5, "files": files}) + "\n")
        if self.delete_archives:
            archive.unlink(missing_ok=True)
        return decoded

    def build(self, name: str, md5: str | None, started: dict[str, float],
              decoded: dict[str, tuple] | None = None) -> SubsetResult:
        """Pair audio and transcripts, decode what ``decoded`` lacks, check, write the
        report, the manifests and, last, the ``.prepared.json``."""
        folder = self.folder(name)
        items, problems = scan_subset(folder)
        if not items:
            raise DataError(f"no utterances found under {folder}")
        decoded = dict(decoded or {})
        keys = {i.id: i.audio.relative_to(folder).as_posix() for i in items if i.audio is not None}
        todo = [i for i in items if i.audio is not None and i.text and keys[i.id] not in decoded]
        t = time.time()
        fresh = parallel_map(probe_audio, [(str(i.audio), str(self.wav_path(name, i.audio)) if self.wav else None,
                                            SAMPLE_RATE) for i in todo],
                             self.jobs, None if self.quiet else f"{name}: {'decode + wav' if self.wav else 'decode'}")
        decoded.update(zip((keys[i.id] for i in todo), fresh, strict=True))
        started["decode"] = started.get("decode", 0.0) + time.time() - t
        train = is_training_subset(name)
        utterances: list[Utterance] = []
        filtered = 0
        for item in items:
            if item.audio is None:
                problems.append({"id": item.id, "path": None, "problem": "transcript line without audio file"})
                continue
            if item.text is None:
                problems.append({"id": item.id, "path": str(item.audio), "problem": "no transcript line"})
                continue
            if not item.text:
                problems.append({"id": item.id, "path": str(item.audio), "problem": "empty transcript"})
                continue
            duration, _, error = decoded[keys[item.id]]
            if error:
                problems.append({"id": item.id, "path": str(item.audio), "problem": error})
                continue
            try:
                text = normalize_text(item.text)
            except ValueError as e:
                problems.append({"id": item.id, "path": str(item.audio), "problem": f"transcript: {e}"})
                continue
            if text != item.text:
                problems.append({"id": item.id, "path": str(item.audio), "kept": True,
                                 "problem": f"transcript normalised from {item.text!r} to {text!r}"})
            if train and not self.min_duration <= duration <= self.max_duration:
                problems.append({"id": item.id, "path": str(item.audio), "filtered": True,
                                 "problem": f"{duration:.2f} s outside the training range "
                                            f"{self.min_duration:g}-{self.max_duration:g} s"})
                filtered += 1
                continue
            audio = self.wav_path(name, item.audio) if self.wav else item.audio
            utterances.append(Utterance(str(audio), text, duration, item.speaker, {"chapter": item.chapter}))
        in_archive = len(items)
        official = SUBSETS[name].utterances if md5 == SUBSETS[name].md5 else None
        report = self.out / f"{name}.report.jsonl"
        atomic_write_text(report, "".join(json.dumps({"subset": name, **p}, ensure_ascii=False) + "\n"
                                          for p in problems))
        if not utterances:
            self._print_problems(name, problems, report)
            raise DataError(f"none of the {len(items)} utterances can be used; see {report}")
        manifests = {"jsonl": write_manifest(self.manifest_path(name, "jsonl"), utterances)}
        for fmt in self.formats:
            if fmt != "jsonl":
                manifests[fmt] = write_any(self.manifest_path(name, fmt), utterances, fmt)
        hours = sum(u.duration for u in utterances) / 3600
        errors = [p for p in problems if not p.get("filtered")]
        self._print_problems(name, errors, report)
        result = SubsetResult(name, "prepared", manifests, in_archive, len(utterances), hours, filtered,
                              len(errors), official, report, seconds=started)
        state = {"subset": name, "archive_md5": md5, "settings": self.settings(name),
                 "manifests": {fmt: _sha1(p) for fmt, p in manifests.items()},
                 "counts": {"in_archive": in_archive, "utterances": len(utterances), "hours": hours,
                            "filtered": filtered, "problems": len(errors)},
                 "official": official, "seconds": {k: round(v, 2) for k, v in started.items()},
                 "prepared": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.marker(name), json.dumps(state, indent=2) + "\n")  # last: the subset is ready
        return result

    def wav_path(self, name: str, flac: Path) -> Path:
        return self.root / "wav" / name / flac.relative_to(self.folder(name)).with_suffix(".wav")

    def _print_problems(self, name: str, problems: list[dict], report: Path, limit: int = 10) -> None:
        for p in problems[:limit]:
            print(f"{name}: {p['id'] or p['path']}: {p['problem']}", file=sys.stderr)
        if len(problems) > limit:
            print(f"{name}: {len(problems) - limit} more problems", file=sys.stderr)
        if problems:
            print(f"{name}: {len(problems)} utterances left out or changed; every one is listed in {report}",
                  file=sys.stderr)


def prepare_librispeech(root: str | os.PathLike, subsets: str | list[str] | tuple[str, ...] | None = None,
                        base_url: str | None = None, checksums: str | os.PathLike | None = None,
                        out: str | os.PathLike | None = None, wav: bool = False,
                        formats: str | list[str] | tuple[str, ...] = ("jsonl",), min_duration: float = 1.0,
                        max_duration: float = 15.0, jobs: int | None = None, download: bool = True,
                        delete_archives: bool = False, retries: int = 5,
                        quiet: bool = False) -> dict[str, SubsetResult]:
    """Download, verify, extract and check LibriSpeech ``subsets`` under ``root`` and write
    their manifests (to ``out``, default ``root``); returns a result per subset.

    The duration filter (``min_duration``-``max_duration`` s) applies to training subsets
    only. Subsets that fail are listed in a LibriSpeechError raised after the others
    are done.
    """
    from .formats import FORMATS

    root = Path(root).absolute()
    names = parse_subsets(subsets)
    fmts = tuple(formats.split(",") if isinstance(formats, str) else formats)
    for fmt in fmts:
        if fmt not in FORMATS:
            raise ValueError(f"unknown manifest format {fmt!r}; formats: {', '.join(FORMATS)}")
    if min_duration > max_duration:
        raise ValueError(f"min_duration {min_duration} is above max_duration {max_duration}")
    prep = _Preparer(root, Path(out).absolute() if out else root, resolve_base_url(base_url),
                     read_checksums(checksums) if checksums else None, wav, tuple(dict.fromkeys(("jsonl", *fmts))),
                     min_duration, max_duration, jobs, download, delete_archives, retries, quiet)
    prep.out.mkdir(parents=True, exist_ok=True)

    results: dict[str, SubsetResult] = {}
    todo: list[tuple[str, str | None]] = []
    for name in names:
        try:
            md5: str | None = prep.expected_md5(name)
        except DataError as e:
            results[name] = SubsetResult(name, "failed", error=str(e))
            continue
        if not download and not prep.archive(name).exists() and not prep.extracted(name, md5) \
                and prep.folder(name).is_dir():
            md5 = None  # a copy extracted by hand: used as it is, and not claimed as verified
        skipped = prep.done(name, md5)
        if skipped:
            results[name] = skipped
            print(f"{name}: already prepared ({skipped.utterances:,} utterances) -> {skipped.manifest}")
        else:
            todo.append((name, md5))

    # Downloads run one after another in a thread, ahead of the extraction and decoding
    # of earlier subsets in this one.
    fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="librispeech-download")
    fetches: dict[str, Future] = {}
    for name, md5 in todo:
        prep.invalidate(name)
        if md5 is not None and not prep.extracted(name, md5):
            fetches[name] = fetcher.submit(prep.fetch, name, md5)
    fetcher.shutdown(wait=False)  # the thread ends once the queue is done
    try:
        for name, md5 in todo:
            seconds: dict[str, float] = {}
            try:
                t = time.time()
                decoded = None
                if name in fetches:
                    archive = fetches[name].result()
                    seconds["download"] = time.time() - t
                    if all(f.done() for f in fetches.values()):
                        # Join the idle download thread, so decoding can fork its workers (see parallel_map).
                        fetcher.shutdown(wait=True)
                    decoded = prep.extract(name, archive, md5 or "", seconds)
                elif md5 is None:
                    print(f"{name}: using {prep.folder(name)} as it is (no archive to verify)")
                results[name] = prep.build(name, md5, seconds, decoded)
            except (DataError, OSError) as e:
                results[name] = SubsetResult(name, "failed", error=str(e))
                print(f"{name}: FAILED: {e}", file=sys.stderr)
    except BaseException:
        prep.cancel.set()
        raise
    _print_summary(results, names)
    failed = [r for r in (results[n] for n in names) if r.status == "failed"]
    if failed:
        raise LibriSpeechError("; ".join(f"{r.subset}: {r.error}" for r in failed)
                               + (f" (prepared: {', '.join(n for n in names if results[n].status != 'failed')})"
                                  if len(failed) < len(names) else ""))
    return {n: results[n] for n in names}


def _print_summary(results: dict[str, SubsetResult], names: list[str]) -> None:
    print(f"\n{'subset':<16} {'status':<9} {'archive':>8} {'manifest':>9} {'hours':>7} {'filtered':>8} "
          f"{'problems':>8}  manifest")
    for name in names:
        r = results[name]
        if r.status == "failed":
            print(f"{name:<16} {'FAILED':<9} {r.error}")
            continue
        print(f"{name:<16} {r.status:<9} {r.in_archive:>8,} {r.utterances:>9,} {r.hours:>7.2f} {r.filtered:>8,} "
              f"{r.problems:>8,}  {r.manifest}")
    for name in names:
        r = results[name]
        if r.status == "failed" or r.official is None:
            continue
        if r.in_archive == r.official:
            print(f"{name}: {r.in_archive:,} utterances in the archive, as OpenSLR publishes")
        else:
            print(f"WARNING: {name}: {r.in_archive:,} utterances in the archive, but OpenSLR publishes "
                  f"{r.official:,}", file=sys.stderr)

