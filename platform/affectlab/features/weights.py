"""Locating model weights on disk, never downloading them from the internet.

A cluster pre-stages weight files in one *model directory* (a local/shared path or an
``s3://`` prefix). Remote directories are copied file by file into a local cache
(``$AFFECTLAB_CACHE_DIR`` or ``~/.cache/affectlab``) the first time a worker needs them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from affectlab import storage

__all__ = ["cache_dir", "find_weights", "stage_model_dir"]


def cache_dir() -> str:
    """Local cache root for staged weights."""
    root = os.environ.get("AFFECTLAB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "affectlab")
    return os.path.join(root, "models")


def stage_model_dir(model_dir: str | None, files: Iterable[str]) -> str | None:
    """Return a local directory holding whichever of ``files`` exist in ``model_dir``.

    A local ``model_dir`` is returned as is. For ``s3://`` each named file that exists there is
    downloaded (once; re-used while its size matches) into a per-URI cache directory; a cached
    copy of a file no longer in ``model_dir`` is removed. Missing files are left for the
    caller's lookup to report.
    """
    if not model_dir:
        return None
    if not storage.is_remote(model_dir):
        return storage.filesystem(model_dir)[1]
    local = os.path.join(cache_dir(), hashlib.sha256(model_dir.encode()).hexdigest()[:16])
    os.makedirs(local, exist_ok=True)
    fs, _ = storage.filesystem(model_dir)
    for name in files:
        info = fs.get_file_info(storage.filesystem(storage.join(model_dir, name))[1])
        target = os.path.join(local, name)
        if info.size is None:  # absent remotely: drop a stale copy so the lookup reports it
            if os.path.isfile(target):
                os.remove(target)
            continue
        if os.path.isfile(target) and os.path.getsize(target) == info.size:
            continue  # already staged
        tmp = f"{target}.part-{os.getpid()}"
        with fs.open_input_stream(info.path) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
        os.replace(tmp, target)
    return local


def find_weights(files: Iterable[str], dirs: Iterable[str | None]) -> tuple[dict[str, str], list[str]]:
    """Look each file name up in ``dirs`` (first hit wins).

    Returns:
        ``(found, missing)``: name -> path for the files found, and the names not found.
    """
    found: dict[str, str] = {}
    missing: list[str] = []
    search = [d for d in dirs if d]
    for name in files:
        hit = next((os.path.join(d, name) for d in search if os.path.isfile(os.path.join(d, name))), None)
        if hit:
            found[name] = hit
        else:
            missing.append(name)
    return found, missing
