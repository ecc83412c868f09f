"""Pretrained models by name: where they come from, what they are, and a local cache.

``ds2 models list`` prints the registry; ``resolve_model(NAME)`` (``--model NAME`` of
``ds2 transcribe``, ``ds2 eval``, ``ds2 serve``) downloads a model on first use into
``$DS2_MODELS_DIR`` (default ``$XDG_CACHE_HOME/deepspeech2/models``, i.e.
``~/.cache/deepspeech2/models``), resuming a cut download (data/download.py), checks its
SHA-256 before anything reads it, converts it to this toolkit's PyTorch checkpoint
(written atomically) and returns that ``model.pt``; later calls return it at once.

Every entry records only what could be checked where the registry was written (no
internet there): the URLs of deepspeech.pytorch's V3.0 release are the ones its own
pretrained smoke test and its maintainer give; their sizes and SHA-256 sums could not be
fetched, so they are ``None`` and the download prints the file's SHA-256 for you to compare
with a trusted copy. MindSpore publishes no download link for its DeepSpeech2 checkpoint:
``ds2 models import DeepSpeech.ckpt --name mindspore-official`` puts your copy in the cache.

A mirror (``--base-url`` or ``$DS2_MODELS_BASE_URL``) serves the files under the same paths
as their origin: ``<base>/SeanNaren/deepspeech.pytorch/releases/download/V3.0/…``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .data.download import CHUNK, ChecksumError, DataError, download

CACHE_ENV = "DS2_MODELS_DIR"
MIRROR_ENV = "DS2_MODELS_BASE_URL"
MODEL_FILE = "model.pt"
INFO_FILE = "model.json"


class RegistryError(DataError):
    """An unknown model name, an unusable cache folder, a model without a download: the message says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    kind: str  # "deepspeech.pytorch" (Lightning .ckpt) or "mindspore" (.ckpt protobuf)
    filename: str
    url: str | None
    size: int | None  # bytes; None: not verifiable where the registry was written
    sha256: str | None  # None: not verifiable where the registry was written
    architecture: str
    features: str
    labels: str
    training_data: str
    source: str
    license: str
    published_wer: dict[str, float] = field(default_factory=dict)  # test set -> greedy WER (%)
    published_note: str = ""
    unverified: str = ""

    def download_url(self, base_url: str | None = None) -> str | None:
        """The URL to fetch: the origin's, or the same path under a mirror."""
        if not base_url or not self.url:
            return self.url
        return base_url.rstrip("/") + "/" + urlparse(self.url).path.lstrip("/")


_DSPT_RELEASE = "https://github.com/SeanNaren/deepspeech.pytorch/releases/download/V3.0/"
_DSPT_SOURCE = ("https://github.com/SeanNaren/deepspeech.pytorch/releases/tag/V3.0 (URLs as in the repository's "
                "tests/pretrained_smoke_test.py and issue #618)")
_DSPT_ARCH = ("deepspeech.pytorch DeepSpeech: 2 conv (41x11/2x2, 21x11/2x1, 32 ch, bias, BatchNorm, Hardtanh(0, 20)), "
              "5 x BiLSTM 1024 summed (BatchNorm before all but the first), BatchNorm + Linear 29 without bias; "
              "read from the file's weights and checked against them")
_DSPT_FEATURES = "16 kHz, 20 ms hamming window, 10 ms hop (n_fft 320), log1p |STFT|, per-utterance mean/std"
_DSPT_LABELS = "_'ABCDEFGHIJKLMNOPQRSTUVWXYZ␣ (blank '_' first, 29)"
_DSPT_UNVERIFIED = ("size and SHA-256 not recorded (the release could not be fetched where this registry was written); "
                    "the architecture in the line above is the repository's default config, the converter reads the "
                    "real one from the file")


def _deepspeech_pytorch(name: str, description: str, filename: str, training_data: str, license: str,
                        published_wer: dict[str, float], published_note: str,
                        unverified: str = _DSPT_UNVERIFIED) -> ModelEntry:
    """An entry for one of deepspeech.pytorch's V3.0 release files (one architecture, one front end)."""
    return ModelEntry(name=name, description=description, kind="deepspeech.pytorch", filename=filename,
                      url=_DSPT_RELEASE + filename, size=None, sha256=None, architecture=_DSPT_ARCH,
                      features=_DSPT_FEATURES, labels=_DSPT_LABELS, training_data=training_data,
                      source=_DSPT_SOURCE, license=license, published_wer=published_wer,
                      published_note=published_note, unverified=unverified)


MODELS: dict[str, ModelEntry] = {e.name: e for e in [
    _deepspeech_pytorch(
        "deepspeech-pytorch-librispeech", "deepspeech.pytorch V3.0 LibriSpeech model",
        "librispeech_pretrained_v3.ckpt", "LibriSpeech 960 h",
        "MIT (the deepspeech.pytorch repository; the release states none for the weights); "
        "data: LibriSpeech CC BY 4.0",
        {"LibriSpeech test-clean": 10.463, "LibriSpeech test-other": 28.285},
        "greedy; CER 3.399 / 12.036; the release also reports a 3-gram ARPA LM beam search "
        "(alpha 1.97, beta 4.36, beam 1024)"),
    _deepspeech_pytorch(
        "deepspeech-pytorch-an4", "deepspeech.pytorch V3.0 AN4 model (CMU census database: spelled words, digits)",
        "an4_pretrained_v3.ckpt", "AN4 train (about 50 min)",
        "MIT (the deepspeech.pytorch repository; the release states none for the weights)",
        {"AN4 test": 9.573}, "greedy; CER 5.515"),
    _deepspeech_pytorch(
        "deepspeech-pytorch-ted", "deepspeech.pytorch V3.0 TED-LIUM model", "ted_pretrained_v3.ckpt", "TED-LIUM",
        "MIT (the deepspeech.pytorch repository; the release states none for the weights); "
        "data: TED-LIUM CC BY-NC-ND 3.0",
        {}, "the release notes give its WER; the figure could not be read where this registry was written",
        unverified=_DSPT_UNVERIFIED + "; published WER not recorded"),
    ModelEntry(
        name="mindspore-official",
        description="the official MindSpore DeepSpeech2 (models repository, official/audio/DeepSpeech2): "
                    "the course's DeepSpeech.ckpt",
        kind="mindspore", filename="DeepSpeech.ckpt", url=None, size=None, sha256=None,
        architecture="configs/mindspore_official.yaml: 2 conv (41x11/2x2, 21x11/2x1, 32 ch, BatchNorm, tanh), "
                     "5 x BiLSTM 1024 summed, Linear 29 without bias; 86.6 M parameters",
        features="16 kHz, 20 ms hamming window, 10 ms hop (n_fft 320), log1p |STFT|, per-utterance mean/std",
        labels="'ABCDEFGHIJKLMNOPQRSTUVWXYZ␣_ (blank '_' last, 29)",
        training_data="LibriSpeech 960 h, 70 epochs on 2 x V100",
        source="https://gitee.com/mindspore/models/tree/master/official/audio/DeepSpeech2 (README: checkpoint 991M "
               "with the Adam state)",
        license="Apache-2.0 (MindSpore models repository); data: LibriSpeech CC BY 4.0",
        published_wer={"LibriSpeech test-clean": 9.902, "LibriSpeech test-other": 28.693},
        published_note="greedy, 2-GPU run; CER 3.317 / 12.473 (the 8-GPU run: 11.593 / 31.397)",
        unverified="no public download URL (the README links none): import your copy with "
                   "`ds2 models import DeepSpeech.ckpt --name mindspore-official`; size and SHA-256 not recorded"),
]}


def known_names() -> str:
    return ", ".join(MODELS)


def get_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise RegistryError(f"unknown model {name!r}; known models: {known_names()} (see `ds2 models list`)") from None


def models_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else $DS2_MODELS_DIR, else $XDG_CACHE_HOME/deepspeech2/models (~/.cache/…)."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepspeech2" / "models"


def _writable_folder(folder: Path) -> Path:
    """``folder``, made if needed; a clear error when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RegistryError(f"model cache folder {folder} is not writable ({e.strerror or e}); choose another with "
                            f"--cache-dir or ${CACHE_ENV}") from None
    return folder


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time downloads or converts a model (others wait, then find it done)."""
    import fcntl

    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _check_sha256(path: Path, entry: ModelEntry, delete: bool) -> str:
    """The file's SHA-256, checked against the registry's; a mismatch deletes a downloaded file."""
    actual = sha256_file(path)
    if entry.sha256 and actual != entry.sha256:
        size = path.stat().st_size
        if delete:
            path.unlink()
        raise ChecksumError(f"{path.name}: SHA-256 {actual} does not match the registry's {entry.sha256} for "
                            f"{entry.name} ({size:,} bytes); "
                            + ("the file was deleted. Run again to download it again, or use another mirror with "
                               "--base-url" if delete else "it was not imported"))
    if not entry.sha256:
        print(f"{entry.name}: the registry records no SHA-256 for {entry.filename} (not verifiable where it was "
              f"written); this file's is {actual}: compare it with a trusted copy", file=sys.stderr)
    return actual


def _convert(entry_kind: str, raw: Path, dest: Path) -> dict:
    """The downloaded or imported file -> our PyTorch checkpoint at ``dest`` (whole or not at all)."""
    if entry_kind == "deepspeech.pytorch":
        from .backends.torch.deepspeech_pytorch import convert_deepspeech_pytorch as convert
    else:
        from .backends.mindspore.ckpt_file import convert_to_torch_without_mindspore as convert
    try:
        return convert(raw, dest)
    except BaseException:
        # A failed save (a full disk) leaves only its temporary file: remove it too.
        for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
        raise


def _installed(folder: Path, entry: ModelEntry) -> Path | None:
    model = folder / MODEL_FILE
    try:
        info = json.loads((folder / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not model.is_file() or info.get("name") != entry.name:
        return None
    if entry.sha256 and info.get("sha256") != entry.sha256:
        return None
    return model


def _install(entry: ModelEntry, raw: Path, folder: Path, digest: str) -> Path:
    model = folder / MODEL_FILE
    print(f"{entry.name}: converting {raw.name} -> {model}", file=sys.stderr)
    report = _convert(entry.kind, raw, model)
    info = {"name": entry.name, "source_file": raw.name, "sha256": digest, "bytes": raw.stat().st_size,
            "parameters": report["parameters"], "kind": entry.kind}
    tmp = folder / f".{INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, folder / INFO_FILE)
    return model


def download_model(name: str, base_url: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached, verified and converted checkpoint of registry model ``name``, downloaded
    (resuming a cut download) and converted when missing."""
    entry = get_entry(name)
    folder = _writable_folder(models_dir(cache_dir) / entry.name)
    with _locked(folder):
        model = _installed(folder, entry)
        if model is not None:
            return model
        raw = folder / entry.filename
        if not raw.is_file():
            url = entry.download_url(base_url or os.environ.get(MIRROR_ENV))
            if url is None:
                raise RegistryError(f"{entry.name}: no download URL is known ({entry.unverified}); get the file "
                                    f"({entry.filename}) and run: ds2 models import FILE --name {entry.name}")
            print(f"{entry.name}: downloading {url}\n  -> {raw}", file=sys.stderr)
            download(url, raw, desc=entry.filename)  # a full disk stops it with the .part file kept
        digest = _check_sha256(raw, entry, delete=True)
        return _install(entry, raw, folder, digest)


def import_model(path: str | os.PathLike, name: str | None = None,
                 cache_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Put a model file you already have into the cache (verified when the registry knows its
    SHA-256) and convert it; returns (name, checkpoint). ``name`` defaults to the entry whose
    SHA-256 or file name matches."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such model file")
    digest = sha256_file(source)
    if name is None:
        matches = [e for e in MODELS.values() if e.sha256 == digest] or \
                  [e for e in MODELS.values() if e.filename == source.name]
        if len(matches) != 1:
            raise RegistryError(f"{source}: cannot tell which model this is; say it with --name (known models: "
                                f"{known_names()})")
        name = matches[0].name
    entry = get_entry(name)
    if entry.sha256 and digest != entry.sha256:
        raise ChecksumError(f"{source}: SHA-256 {digest} does not match the registry's {entry.sha256} for "
                            f"{entry.name}; it was not imported")
    folder = _writable_folder(models_dir(cache_dir) / entry.name)
    with _locked(folder):
        raw = folder / entry.filename
        if not (raw.is_file() and raw.stat().st_size == source.stat().st_size and sha256_file(raw) == digest):
            tmp = folder / f".{entry.filename}.{os.getpid()}.tmp"
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, raw)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        (folder / INFO_FILE).unlink(missing_ok=True)  # converted again from the new file
        if not entry.sha256:
            print(f"{entry.name}: imported {source.name} (SHA-256 {digest}; the registry has none to compare with)",
                  file=sys.stderr)
        return entry.name, _install(entry, raw, folder, digest)


def convert_file_cached(path: Path, kind: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """A deepspeech.pytorch checkpoint (or, without MindSpore installed, a MindSpore .ckpt) given by
    path -> a converted copy in the cache, keyed by its SHA-256."""
    digest = sha256_file(path)
    folder = _writable_folder(models_dir(cache_dir) / "converted")
    model = folder / f"{path.stem}-{digest[:16]}.pt"
    with _locked(folder):
        if not model.is_file():
            print(f"{path}: {kind} checkpoint; converting -> {model}", file=sys.stderr)
            _convert(kind, path, model)
    return model


def resolve_model(name_or_path: str | os.PathLike, *, base_url: str | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """A checkpoint to load for ``--model``: a registry name (downloaded, verified and converted
    on first use), a deepspeech.pytorch ``.ckpt``/``.pth`` path or, where MindSpore is not
    installed, a MindSpore ``.ckpt`` path (converted once into the cache), or any other existing
    checkpoint path (returned as it is)."""
    path = Path(name_or_path)
    if path.exists():
        if path.is_file() and path.suffix in (".ckpt", ".pth"):
            import importlib.util

            from .backends.torch.deepspeech_pytorch import is_torch_file

            if is_torch_file(path):
                return convert_file_cached(path, "deepspeech.pytorch", cache_dir)
            if path.suffix == ".ckpt" and importlib.util.find_spec("mindspore") is None:
                return convert_file_cached(path, "mindspore", cache_dir)  # read without MindSpore
        return path
    name = str(name_or_path)
    if name not in MODELS:
        raise RegistryError(f"{name!r} is neither a file nor a known model; known models: {known_names()} "
                            "(see `ds2 models list`)")
    return download_model(name, base_url, cache_dir)


def list_models(cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """Every entry as a dict, with ``cached``: the converted checkpoint's path or None."""
    rows = []
    for entry in MODELS.values():
        row = asdict(entry)
        model = _installed(models_dir(cache_dir) / entry.name, entry)
        row["cached"] = str(model) if model else None
        rows.append(row)
    return rows


def format_models(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        wer = ", ".join(f"{k} {v:g} %" for k, v in row["published_wer"].items()) or "not recorded"
        lines += [f"{row['name']}{'  [cached: ' + row['cached'] + ']' if row['cached'] else ''}",
                  f"  {row['description']}",
                  f"  file:      {row['filename']} ({row['url'] or 'no public URL: ds2 models import'})",
                  f"  sha256:    {row['sha256'] or 'not recorded'}; size: "
                  f"{format(row['size'], ',') + ' bytes' if row['size'] else 'not recorded'}",
                  f"  network:   {row['architecture']}",
                  f"  features:  {row['features']}",
                  f"  labels:    {row['labels']}",
                  f"  data:      {row['training_data']}",
                  f"  WER:       {wer}" + (f" ({row['published_note']})" if row["published_note"] else ""),
                  f"  license:   {row['license']}",
                  f"  source:    {row['source']}"]
        if row["unverified"]:
            lines.append(f"  unverified: {row['unverified']}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
