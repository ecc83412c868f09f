"""An on-disk cache of spectrogram features, computed once in parallel.

Each utterance's features are stored as a float16 .npy file whose name hashes the
audio file's path, size, modification time and the feature settings, so a changed
file or setting is recomputed and nothing stale is read. Files are written to a
temporary name and renamed, so an interrupted run leaves only whole files and the
next run computes just what is missing.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..audio import AudioError, FeatureSpec, load_features
from ..progress import bar as progress_bar


def default_cache_dir(cfg) -> str:
    """The feature cache of a config: ``data.cache_dir``, else $DS2_CACHE, else ~/.cache/deepspeech2/features."""
    return cfg.data.cache_dir or os.environ.get("DS2_CACHE") or str(Path.home() / ".cache" / "deepspeech2" / "features")


def _compute(job: tuple[str, str, FeatureSpec]) -> tuple[str, str | None]:
    audio_path, cache_path, spec = job
    try:
        features = load_features(audio_path, spec)
    except AudioError as e:
        return audio_path, str(e)
    if features.shape[1] == 0:
        return audio_path, f"{audio_path}: audio too short for one frame"
    with atomic_output(cache_path, ".npy") as tmp:
        np.save(tmp, features.astype(np.float16))
    return audio_path, None


class FeatureCache:
    def __init__(self, cache_dir: str | os.PathLike, spec: FeatureSpec, in_memory_limit_gb: float = 4.0):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.in_memory_limit = int(in_memory_limit_gb * 2**30)
        self._memory: dict[str, np.ndarray] = {}
        # Linear-bin caches written before audio.n_mels existed stay valid: n_mels = 0 is left out.
        self._spec_key = repr(sorted((k, v) for k, v in asdict(spec).items() if not (k == "n_mels" and v == 0)))

    def path_for(self, audio_path: str) -> Path:
        try:
            st = os.stat(audio_path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest = hashlib.sha1(f"{os.path.abspath(audio_path)}|{stamp}|{self._spec_key}".encode()).hexdigest()
        return self.dir / digest[:2] / f"{digest}.npy"

    def ensure(self, audio_paths: list[str], jobs: int = 0, desc: str = "features") -> dict[str, str]:
        """Compute the features that are not cached yet; returns {audio path: error}."""
        todo = []
        for audio_path in dict.fromkeys(audio_paths):
            cache_path = self.path_for(audio_path)
            if not cache_path.exists():
                cache_path.parent.mkdir(exist_ok=True)
                todo.append((audio_path, str(cache_path), self.spec))
        errors: dict[str, str] = {}
        if not todo:
            return errors
        jobs = jobs or os.cpu_count() or 1
        bar = progress_bar(total=len(todo), desc=desc, unit="utt")
        if jobs == 1 or len(todo) < 16:
            results = map(_compute, todo)
            for audio_path, error in results:
                if error:
                    errors[audio_path] = error
                bar.update()
        else:
            with ProcessPoolExecutor(jobs) as pool:
                for audio_path, error in pool.map(_compute, todo, chunksize=8):
                    if error:
                        errors[audio_path] = error
                    bar.update()
        bar.close()
        return errors

    def load(self, audio_path: str) -> np.ndarray:
        """float16 features (bins, frames); kept in memory while under the limit."""
        cached = self._memory.get(audio_path)
        if cached is not None:
            return cached
        features = np.load(self.path_for(audio_path))
        if self.in_memory_limit > 0:
            self.in_memory_limit -= features.nbytes
            self._memory[audio_path] = features
        return features
