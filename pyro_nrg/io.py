r"""The one atomic file write of the package: temp file in the same folder, then rename.

Every file pyro_nrg writes (checkpoints, saved flows, configs, reports, data caches) goes through
:func:`atomic_write`, so that a reader sees either the old file or the new one, never a torn one:

1. stale temp files of the same target left by dead processes (``kill -9``) are removed;
2. the content goes to ``.<name>.tmp-<host>-<pid>`` beside the target;
3. ``os.replace`` renames it over the target (atomic on POSIX within one file system).

On *any* failure the temp file is removed; a full disk (``ENOSPC``) raises
:class:`~pyro_nrg.errors.DiskFullError` with the number of bytes the file needs and the free space, so the
user knows how much to free. Torch objects are serialised in memory first (``torch.save`` to a buffer): the size
is known before the disk is touched, and a full disk gives an ``OSError`` instead of torch's opaque
``RuntimeError`` from its zip writer.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> p = write_json(folder / "config.json", {"L": 8})
    >>> p.read_text()
    '{\n  "L": 8\n}'
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .errors import DiskFullError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_torch_save",
    "write_text",
    "write_json",
    "temp_path",
    "remove_stale_temps",
    "measured_size",
]

PathLike = str | os.PathLike[str]

_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "localhost"


def temp_path(path: PathLike) -> Path:
    """The temp file :func:`atomic_write` uses for ``path`` in this process: ``.<name>.tmp-<host>-<pid>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: PathLike) -> list[Path]:
    """Remove temp files of ``path`` left by dead processes of this host; returns the files removed.

    Matches ``.<name>.tmp-<host>-<pid>`` (and the older ``.<name>.tmp-<pid>``). A file of a live process or of
    another host is left alone.
    """
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
    removed: list[Path] = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for f in candidates:
        m = pattern.match(f.name)
        if m is None or (m["host"] is not None and m["host"] != _HOST):
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            f.unlink()
            removed.append(f)
        except OSError:
            pass
    return removed


class _CountingSink(io.RawIOBase):
    """A write-only stream that only counts bytes (to tell how large a file would have been)."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        n = memoryview(b).nbytes
        self.size += n
        return n


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _human(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def atomic_write(
    path: PathLike,
    write: Callable[[Path], None],
    size_hint: int | Callable[[], int] | None = None,
) -> Path:
    """Create ``path`` atomically: ``write(temp)`` writes the content to a temp file, which is renamed over ``path``.

    Args:
        path: target file; its folder is created if missing.
        write: called with the temp file's path; must write the whole content there.
        size_hint: the content's size in bytes (or a callable computing it), quoted when the disk is full.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DiskFullError: the device has no space left; the partial temp file was removed, ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        tmp.unlink(missing_ok=True)
        need: int | None
        try:
            need = size_hint() if callable(size_hint) else size_hint
        except Exception:  # noqa: BLE001 - the size is only for the message
            need = None
        raise DiskFullError(
            f"no space left on the device to write {path}: the file needs {_human(need)} and "
            f"{_human(_free_bytes(path.parent))} is free. Free some space there (or write elsewhere) and retry; "
            f"the previous {path.name} (if any) is intact and the partial temp file was removed"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    view = memoryview(data)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(view)

    return atomic_write(path, write, size_hint=view.nbytes)


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: serialised in memory, then written by :func:`atomic_write_bytes`.

    A kill never leaves a torn file; a full disk raises :class:`~pyro_nrg.errors.DiskFullError` with the size.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getbuffer())


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, obj: Any, indent: int | None = 2, **dumps_kwargs: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (``json.dumps(obj, indent=indent, **dumps_kwargs)``)."""
    return write_text(path, json.dumps(obj, indent=indent, **dumps_kwargs))


def measured_size(write_to_stream: Callable[[Any], None]) -> int:
    """Bytes that ``write_to_stream(stream)`` writes (to a counting sink; nothing is stored)."""
    sink = _CountingSink()
    write_to_stream(sink)
    return sink.size
