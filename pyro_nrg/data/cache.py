"""A small on-disk cache for generated data sets: one ``.npz`` per settings, with the settings and a checksum.

The file holds the arrays, ``__settings__`` (the settings as canonical JSON) and ``__checksum__`` (SHA-256 over the
settings JSON and every array's name, dtype, shape and bytes). :func:`load_or_generate` reuses a file whose settings
match and whose checksum verifies, regenerates when the settings differ, and raises
:class:`~pyro_nrg.errors.DataCacheError` for a file that is unreadable or fails its checksum (a corrupt cache is
never silently trusted; ``regenerate=True`` overwrites it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataCacheError
from ..io import atomic_write, measured_size

__all__ = ["settings_key", "checksum", "save_arrays", "load_arrays", "load_or_generate"]

logger = logging.getLogger(__name__)


def _canonical_json(settings: Mapping[str, Any]) -> str:
    return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), default=str)


def settings_key(settings: Mapping[str, Any], length: int = 12) -> str:
    """Short hex digest of the settings (used in cache file names)."""
    return hashlib.sha256(_canonical_json(settings).encode()).hexdigest()[:length]


def checksum(arrays: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the canonical settings JSON and every array's name, dtype, shape and bytes."""
    h = hashlib.sha256(_canonical_json(settings).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> Path:
    """Write ``arrays`` with their settings and checksum to ``path`` (atomically: temp file, then rename)."""
    path = Path(path)
    blob = {k: np.asarray(v) for k, v in arrays.items()}
    blob["__settings__"] = np.array(_canonical_json(settings))
    blob["__checksum__"] = np.array(checksum(arrays, settings))
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **blob)

    return atomic_write(path, write, size_hint=lambda: measured_size(lambda sink: np.savez_compressed(sink, **blob)))


def load_arrays(
    path: str | os.PathLike, expected: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a cache file and verify its checksum; returns ``(arrays, settings)``.

    Args:
        path: the file.
        expected: if given, the checksum the file must carry (e.g. the one a data set was released with).

    Raises:
        DataCacheError: unreadable file, missing settings/checksum, checksum mismatch, or another checksum than
            ``expected``.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            blob = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataCacheError(
            f"cache file {path} is unreadable ({e}): delete it or pass regenerate=True to rebuild it"
        ) from e
    if "__settings__" not in blob or "__checksum__" not in blob:
        raise DataCacheError(
            f"{path} is not a pyro_nrg data cache (no settings/checksum): delete it or pass regenerate=True"
        )
    settings = json.loads(str(blob.pop("__settings__")))
    stored = str(blob.pop("__checksum__"))
    if checksum(blob, settings) != stored:
        raise DataCacheError(
            f"cache file {path} fails its checksum (corrupted or edited): delete it or pass regenerate=True"
        )
    if expected is not None and stored != expected:
        raise DataCacheError(
            f"{path} holds other data than expected (checksum {stored[:12]}..., expected {expected[:12]}...): "
            "reinstall the package, or regenerate the file"
        )
    return blob, settings


def load_or_generate(
    path: str | os.PathLike,
    settings: Mapping[str, Any],
    generate: Callable[[], Mapping[str, np.ndarray]],
    regenerate: bool = False,
) -> tuple[dict[str, np.ndarray], bool]:
    """Arrays for ``settings`` from the cache file ``path``, generating (and saving) them when needed.

    Args:
        path: cache file.
        settings: JSON-serialisable settings that determine the data.
        generate: called with no arguments to build the arrays when the cache cannot be used.
        regenerate: ignore (and overwrite) any existing file.

    Returns:
        ``(arrays, generated)``: ``generated`` is ``False`` when the cache was reused.

    Raises:
        DataCacheError: the file exists with matching name but is corrupt (see :func:`load_arrays`).
    """
    path = Path(path)
    want = json.loads(_canonical_json(settings))
    if path.exists() and not regenerate:
        arrays, have = load_arrays(path)
        if have == want:
            logger.info("reusing cached data %s", path)
            return arrays, False
        logger.info("cache %s was made with other settings; regenerating", path)
    arrays = {k: np.asarray(v) for k, v in generate().items()}
    save_arrays(path, arrays, want)
    return arrays, True
