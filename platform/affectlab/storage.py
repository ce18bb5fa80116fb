"""One way to address inputs and outputs: local paths and ``s3://bucket/prefix`` URIs.

Local paths use pyarrow's local filesystem; ``s3://`` uses pyarrow's S3 filesystem, with the
endpoint taken from ``AWS_ENDPOINT_URL`` (for MinIO, moto, Ceph...) and credentials resolved by
the AWS SDK's default chain (environment variables, ``~/.aws`` profiles, instance roles).
Credentials are never accepted as arguments, printed or written.

Publishing is atomic per file: data is written under a name that readers skip (pyarrow datasets
and pandas ignore names starting with ``_`` or ``.``) and then renamed (local) or written with a
single PUT / server-side copy (S3), so a reader never sees a half-written file.
"""

from __future__ import annotations

import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from affectlab.errors import StorageError

__all__ = [
    "absolute",
    "describe",
    "exists",
    "filesystem",
    "is_remote",
    "join",
    "list_files",
    "local_copy",
    "makedirs",
    "move_tree",
    "read_bytes",
    "read_parquet",
    "read_text",
    "remove",
    "write_bytes",
    "write_parquet",
    "write_text",
]

SUPPORTED_SCHEMES = ("file", "s3")


def _scheme(uri: str) -> str:
    if "://" not in uri:
        return "file"
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(f"unsupported URI scheme {scheme!r} in {uri!r}; use a local path or s3://")
    return scheme


def is_remote(uri: str) -> bool:
    """True when ``uri`` names object storage (``s3://``) rather than a local path."""
    return _scheme(uri) == "s3"


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or URI (always with ``/`` for URIs)."""
    if is_remote(uri):
        return posixpath.join(uri.rstrip("/"), *parts)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.join(uri, *parts)


def _local_path(uri: str) -> str:
    """The absolute local path of a local path or ``file://`` URI (``~`` expanded)."""
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return os.path.abspath(os.path.expanduser(path))


def absolute(uri: str) -> str:
    """``uri`` unchanged when it names object storage; else its absolute local path.

    For anything handed to other processes (Ray workers, Tune trials) that may run in another
    directory: a relative local path would resolve against *their* working directory.

    Raises:
        StorageError: An unsupported URI scheme (the message names the URI).
    """
    return uri if is_remote(uri) else _local_path(uri)


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    kwargs: dict[str, Any] = {
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    }
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs["endpoint_override"] = rest if rest else endpoint
        kwargs["scheme"] = scheme if rest else "https"
        kwargs["allow_bucket_creation"] = True
    return pafs.S3FileSystem(**kwargs)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(pyarrow filesystem, path inside it)`` for a local path or ``s3://`` URI."""
    if is_remote(uri):
        return _s3_filesystem(), uri.split("://", 1)[1].rstrip("/")
    return pafs.LocalFileSystem(), _local_path(uri)


def exists(uri: str) -> bool:
    """True when a file or directory exists at ``uri``."""
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    """True when ``uri`` is a directory (or a non-empty S3 prefix)."""
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def makedirs(uri: str) -> None:
    """Create a directory and its parents (a no-op on S3 beyond the bucket)."""
    fs, path = filesystem(uri)
    fs.create_dir(path, recursive=True)


def read_bytes(uri: str) -> bytes:
    """Read a whole file.

    Raises:
        FileNotFoundError: Nothing exists at ``uri``.
    """
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(uri)
    if info.type == pafs.FileType.Directory:
        raise StorageError(f"{uri} is a directory, expected a file")
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(uri: str, encoding: str = "utf-8") -> str:
    """Read a whole text file (see :func:`read_bytes`)."""
    return read_bytes(uri).decode(encoding)


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically (readers see the old file or the whole new one)."""
    fs, path = filesystem(uri)
    parent = posixpath.dirname(path) if is_remote(uri) else os.path.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    if is_remote(uri):
        with fs.open_output_stream(path) as f:  # one PUT: atomic on S3
            f.write(data)
        return
    tmp = os.path.join(parent, f"_tmp-{uuid.uuid4().hex[:12]}-{os.path.basename(path)}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    """Write text atomically (see :func:`write_bytes`)."""
    write_bytes(uri, text.encode(encoding))


def write_parquet(table: pa.Table, uri: str) -> None:
    """Write one Parquet file atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes(uri, buf.getvalue())


def read_parquet(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file or a directory of Parquet files (hidden ``_``/``.`` names skipped)."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise FileNotFoundError(uri)
    return pq.read_table(path, filesystem=fs, columns=columns)


def list_files(uri: str, *, suffix: str = "", include_hidden: bool = False) -> list[str]:
    """List files under a directory (recursively) as URIs/paths, sorted.

    Names starting with ``_`` or ``.`` (staging and temporary files) are skipped unless
    ``include_hidden`` is true.
    """
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    out = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(suffix):
            continue
        rel = info.path[len(path) :].lstrip("/")
        if not include_hidden and any(p.startswith(("_", ".")) for p in rel.split("/")):
            continue
        out.append(join(uri, *rel.split("/")))
    return sorted(out)


def remove(uri: str) -> None:
    """Delete a file or a directory tree; a missing target is not an error."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def move_tree(src_uri: str, dst_uri: str) -> list[str]:
    """Move every file under ``src_uri`` into ``dst_uri`` (same relative names), one by one.

    Each file appears at its destination whole (local rename; S3 server-side copy), so readers
    of ``dst_uri`` never see a partial file. Returns the destination URIs.
    """
    fs, src = filesystem(src_uri)
    _, dst = filesystem(dst_uri)
    moved = []
    for file_uri in list_files(src_uri, include_hidden=True):
        rel = file_uri[len(src_uri.rstrip("/")) :].lstrip("/").lstrip(os.sep)
        target = join(dst_uri, rel)
        _, tpath = filesystem(target)
        parent = posixpath.dirname(tpath)
        if parent:
            fs.create_dir(parent, recursive=True)
        _, fpath = filesystem(file_uri)
        fs.move(fpath, tpath)
        moved.append(target)
    remove(src_uri)
    return moved


@contextmanager
def local_copy(uri: str, suffix: str = "") -> Iterator[str]:
    """Yield a local path for ``uri``: the path itself when local, else a temporary download."""
    if not is_remote(uri):
        yield filesystem(uri)[1]
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="affectlab-") as tmp:
        local = os.path.join(tmp, "file" + (suffix or os.path.splitext(uri)[1]))
        with open(local, "wb") as f:
            f.write(read_bytes(uri))
        yield local


def describe() -> dict[str, str]:
    """Storage settings for ``affectlab info``: endpoint and credential *source*, never secrets."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        creds = "environment (AWS_ACCESS_KEY_ID set)"
    elif os.environ.get("AWS_PROFILE"):
        creds = f"AWS profile {os.environ['AWS_PROFILE']!r}"
    elif os.path.exists(os.path.expanduser("~/.aws/credentials")):
        creds = "default AWS profile (~/.aws/credentials)"
    else:
        creds = "none found (S3 access will fail unless an instance role applies)"
    return {
        "s3_endpoint": os.environ.get("AWS_ENDPOINT_URL") or "AWS default",
        "s3_region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "s3_credentials": creds,
    }
