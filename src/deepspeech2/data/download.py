"""Downloads that survive a cut connection, checksums, and tar extraction that cannot escape.

``download`` writes to ``<name>.part`` and, when the connection drops, asks the server for
the rest with an HTTP ``Range`` request, so a 6 GB archive is never fetched twice. A
finished file is checked against its MD5 before anyone uses it; a verified file gets a
small sidecar (size, mtime, MD5) so a rerun does not hash gigabytes again.

``safe_extract`` refuses the whole archive at the first member that is a link, a device,
an absolute path or a path that leaves the target folder, and reports a truncated or
corrupt archive by name instead of a bare ``EOFError``.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..progress import bar as progress_bar

USER_AGENT = "deepspeech2-data/0.1 (+https://www.openslr.org/12)"
CHUNK = 1 << 20


class DataError(ValueError):
    """A download or archive that cannot be used; the message names it and says what to do."""


class DownloadError(DataError):
    pass


class ChecksumError(DataError):
    pass


class ArchiveError(DataError):
    """A truncated or corrupt archive, or one with unsafe members."""


def md5_file(path: str | os.PathLike, desc: str | None = None) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks (with a progress bar when ``desc`` is given)."""
    digest = hashlib.md5()
    size = os.path.getsize(path)
    bar = progress_bar(total=size, desc=desc, unit="B", unit_scale=True, disable=desc is None or size < 64 * CHUNK)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            bar.update(len(block))
    bar.close()
    return digest.hexdigest()


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """``md5  name`` lines (md5sum's format, ``*name`` too) -> {file name: md5}."""
    sums: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"\s*([0-9a-fA-F]{32})\s+\*?(.+?)\s*", line)
        if not match:
            raise DataError(f"{path}:{lineno}: expected 'md5  name', got {line!r}")
        sums[PurePosixPath(match.group(2)).name] = match.group(1).lower()
    return sums


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified.json")


def is_verified(path: str | os.PathLike, md5: str | None) -> bool:
    """True when ``path`` was verified against ``md5`` and has not changed since."""
    path = Path(path)
    try:
        st = path.stat()
        info = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return (info.get("size") == st.st_size and info.get("mtime_ns") == st.st_mtime_ns
            and (md5 is None or info.get("md5") == md5))


def verify(path: str | os.PathLike, md5: str | None, desc: str | None = None) -> str:
    """Check ``path`` against ``md5`` (hashing only when it changed since the last check).

    A mismatch deletes the file, because resuming onto a corrupt file cannot repair it,
    and raises ChecksumError with both sums.
    """
    path = Path(path)
    if is_verified(path, md5):
        return json.loads(_sidecar(path).read_text())["md5"]
    return _accept(path, md5_file(path, desc), md5)


def _accept(path: Path, actual: str, md5: str | None) -> str:
    """Compare the file's MD5 ``actual`` with ``md5``; record it, or delete the file."""
    if md5 is not None and actual != md5.lower():
        size = path.stat().st_size
        path.unlink()
        _sidecar(path).unlink(missing_ok=True)
        raise ChecksumError(f"{path.name}: MD5 {actual} does not match the expected {md5} ({size:,} bytes); "
                            "the file was deleted. Run again to download it again, or choose another mirror "
                            "with --base-url")
    st = path.stat()
    _sidecar(path).write_text(json.dumps({"md5": actual, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return actual


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from the caller


def _md5_of_part(part: Path) -> hashlib._Hash:
    digest = hashlib.md5()
    with open(part, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest


def _fetch_once(url: str, part: Path, timeout: float, desc: str | None,
                cancel: threading.Event | None) -> hashlib._Hash:
    """Append the rest of ``url`` to ``part``; returns the MD5 state of the whole part
    (hashed while it arrives, so a 6 GB archive is not read again to verify it). Raises
    OSError when the transfer stops early (the caller resumes)."""
    start = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            # Nothing left past `start`: the part is complete (or longer than the file, which
            # the checksum will catch).
            return _md5_of_part(part)
        raise
    with response:
        if start and response.status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise DownloadError(f"{url}: the server answered the range request from byte {start} with "
                                    f"{response.headers.get('Content-Range')!r}")
            total = int(match.group(2)) if match.group(2) != "*" else None
            mode, digest = "ab", _md5_of_part(part)
        else:
            # A server that ignores Range sends the whole file again: start over.
            start, mode, digest = 0, "wb", hashlib.md5()
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        bar = progress_bar(total=total, initial=start, desc=desc, unit="B", unit_scale=True, disable=desc is None)
        received = start
        try:
            with open(part, mode) as f:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    if cancel is not None and cancel.is_set():
                        raise DownloadError(f"{url}: download cancelled; {received:,} bytes are kept in {part}")
                    f.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received:,} of {total:,} bytes")
    return digest


def download(url: str, dest: str | os.PathLike, md5: str | None = None, retries: int = 5, timeout: float = 60.0,
             desc: str | None = None, backoff: float = 1.0, cancel: threading.Event | None = None) -> Path:
    """Download ``url`` to ``dest`` (resuming a ``.part`` file) and verify its MD5.

    A file already at ``dest`` is verified instead of downloaded again. Dropped
    connections are resumed with a Range request up to ``retries`` times, waiting
    ``backoff``, 2 x ``backoff``… seconds (at most 60) in between. Setting ``cancel``
    stops it (what arrived stays in the ``.part`` file).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        verify(dest, md5, desc and f"{desc} (md5)")
        return dest
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            digest = _fetch_once(url, part, timeout, desc, cancel)
            break
        except urllib.error.HTTPError as e:
            if e.code in (408, 429) or e.code >= 500:
                error: Exception = e
            else:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
        except (http.client.HTTPException, OSError) as e:  # URLError, timeouts and resets are OSErrors
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                # Retrying cannot help: stop at once, keeping what arrived for the next run.
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{dest}: the disk is full ({e.strerror}); {have:,} bytes are kept in {part}: "
                                    "free space and run again to resume") from None
            error = e
        attempt += 1
        have = part.stat().st_size if part.exists() else 0
        if attempt > retries:
            raise DownloadError(f"{url}: download failed after {attempt} attempts ({error}); {have:,} bytes are "
                                f"kept in {part} and the next run resumes from there") from None
        wait = min(60.0, backoff * 2 ** (attempt - 1))
        print(f"{dest.name}: {error}; resuming from byte {have:,} in {wait:.0f} s "
              f"(attempt {attempt + 1} of {retries + 1})", flush=True)
        if cancel is not None and cancel.wait(wait):
            raise DownloadError(f"{url}: download cancelled; {have:,} bytes are kept in {part}")
        elif cancel is None:
            time.sleep(wait)
    os.replace(part, dest)
    _accept(dest, digest.hexdigest(), md5)
    return dest


def _check_member(member: tarfile.TarInfo, target: Path) -> str | None:
    """Why ``member`` must not be extracted into ``target``, or None when it is safe."""
    name = member.name
    if member.issym() or member.islnk():
        return f"is a link (to {member.linkname!r})"
    if not (member.isreg() or member.isdir()):
        return "is not a regular file or folder"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "leaves the target folder ('..')"
    # Lexical is enough: the target starts empty and links are refused, so no path inside
    # it can lead elsewhere.
    joined = os.path.normpath(os.path.join(target, name))
    if joined != str(target) and not joined.startswith(str(target) + os.sep):
        return "leaves the target folder"
    return None


class _NotTheArchive(Exception):
    """Carries an error from writing the output, so that it is not blamed on the archive."""


def _outside(fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        raise _NotTheArchive() from e


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, desc: str | None = None,
                 on_file: Callable[[Path], None] | None = None) -> int:
    """Extract regular files and folders of ``archive`` into ``target``; returns the number
    of files. ``on_file(path)`` is called as each file is complete (to start work on it
    while the rest is still being extracted).

    Raises ArchiveError naming the first unsafe member (links, devices, absolute paths,
    ``..``) or the point where a truncated/corrupt archive stops; what was extracted up to
    then stays in ``target`` for the caller to discard, so extract into a staging folder.
    """
    archive, target = Path(archive), Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    files = 0
    last = "none"
    folders: set[Path] = set()  # made already: saves a stat per file
    bar = progress_bar(desc=desc, unit="file", disable=desc is None)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                problem = _check_member(member, target)
                if problem:
                    raise ArchiveError(f"{archive.name}: member {member.name!r} {problem}; the archive is refused "
                                       "and nothing from it is used")
                dest = target / member.name
                if member.isdir():
                    _outside(dest.mkdir, parents=True, exist_ok=True)
                    folders.add(dest)
                else:
                    if dest.parent not in folders:
                        _outside(dest.parent.mkdir, parents=True, exist_ok=True)
                        folders.add(dest.parent)
                    source = tar.extractfile(member)
                    assert source is not None  # regular files always have content
                    with source, _outside(open, dest, "wb") as out:
                        while block := source.read(CHUNK):
                            _outside(out.write, block)
                    files += 1
                    bar.update()
                    if on_file is not None:
                        _outside(on_file, dest)
                last = member.name
            # tarfile stops at the end-of-archive block without reading the compressed
            # stream's trailer; reading it checks the CRC and catches a cut-off tail.
            while tar.fileobj is not None and tar.fileobj.read(CHUNK):
                pass
    except _NotTheArchive as e:
        raise e.__cause__ from None  # e.g. a full disk: not the archive's fault
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ArchiveError(f"{archive.name}: truncated or corrupt archive after {files} files (last member "
                           f"{last!r}): {e or type(e).__name__}; delete it and download it again") from None
    finally:
        bar.close()
    return files


def download_corpus(name: str, url: str, root: str | os.PathLike, marker: str, md5: str | None = None,
                    archive_name: str | None = None, quiet: bool = False) -> Path:
    """Download a corpus archive and unpack it into ``root``: the folder of the archive that
    holds ``marker`` (a relative path such as ``train/wav.scp``) becomes ``root``. Nothing
    is done when ``root`` already holds the corpus (``marker`` or a ``manifest.csv``)."""
    root = Path(root)
    if (root / marker).is_file() or (root / "manifest.csv").is_file():
        if not quiet:
            print(f"{name}: {root} already holds the corpus; not downloading")
        return root
    archive = download(url, root / "downloads" / (archive_name or Path(url).name), md5, desc=None if quiet else name)
    staging = root / ".extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging)
        depth = len(Path(marker).parts)
        found = [p.parents[depth - 1] for p in staging.rglob(marker)]
        if not found:
            raise ArchiveError(f"{url}: no {marker} in the archive; is it {name}?")
        for child in found[0].iterdir():
            shutil.move(str(child), str(root / child.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
