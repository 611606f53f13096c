"""Run folders and reports of the ``pyro-nrg`` studies: JSON, JSON lines, figures, a Markdown report, a console table.

A run folder holds everything a study produced, so a scientist can paste ``report.md`` (which links the PNGs next
to it) into a lab notebook, and a program can read ``summary.json``::

    runs/ising-L8-20261129-101500/
        run.lock           pid and host of the process that owns the folder (while it runs)
        options.json       the command-line options of the run (written first: marks the folder as a run)
        resumes.jsonl      the options of each accepted --resume (options.json keeps the original ones)
        config.json        energy, flow and training configuration (checked on --resume)
        metrics.jsonl      one JSON record per training step
        checks.jsonl       periodic importance-sampled free-energy checks during training
        checkpoint.pt      flow + optimizer + RNG state (resume with --resume)
        *.nc               ArviZ InferenceData per sampler (netCDF)
        *.png              figures
        summary.json       every number of the report
        report.md          the report
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, RunFolderError, RunFolderLockedError
from ..io import atomic_write, write_json, write_text

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock file is written, but not held by the kernel
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunFolder", "StudyOutcome", "Row", "console_table", "markdown_table", "fmt_value", "fmt_rel",
           "read_json_file"]

logger = logging.getLogger("pyro_nrg")

Row = tuple[str, str, str, str]
"""One line of a summary table: quantity, value, reference, deviation."""


@dataclass
class StudyOutcome:
    """What a study returns: the report path, the one-screen summary table (text) and the summary dict."""

    report: Path
    table: str
    summary: dict[str, Any]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _jsonable(obj.item())
    return obj


class RunFolder:
    """The folder of one run, owned by one process at a time; refuses to reuse a folder that holds a run unless
    resuming.

    Ownership is a lock file, ``run.lock``, holding the owner's pid, host and start time, with an exclusive
    ``flock`` on it for the life of the owner: the kernel drops that lock when the owner dies (even by ``kill -9``),
    so a lock file left behind by a dead process is recognised as stale and taken over, with a warning. A lock
    file written on another host cannot be checked from here and is refused (the message says how to clear it).
    :meth:`close` (or leaving the ``with`` block) releases the lock and removes the lock file.

    Args:
        path: the folder (created with its parents).
        resume: continuing an earlier run in ``path`` (otherwise an existing ``options.json`` is an error).
        lock: take the lock (default); ``False`` only reads or writes without owning the folder.

    Raises:
        CheckpointError: ``path`` holds a run and ``resume`` is false, or nothing to resume there.
        RunFolderLockedError: another process owns the folder.
        RunFolderError: the folder cannot be created or written (a file, under a file, read-only, virtual).
    """

    LOCK = "run.lock"

    def __init__(self, path: str | os.PathLike[str], resume: bool = False, lock: bool = True) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self.created = not self.path.exists()
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a folder: choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create the run folder {self.path} ({exc.strerror or exc}): choose "
                                 "another --out in a folder you can write to") from exc
        try:
            if lock:
                self._acquire()
            if (self.path / "options.json").exists() and not resume:
                raise CheckpointError(
                    f"{self.path} already holds a run: pass --resume to continue it, or choose another --out "
                    "(refusing to overwrite it)"
                )
            if resume and not (self.path / "options.json").exists():
                raise CheckpointError(f"nothing to resume in {self.path}: no options.json there (drop --resume)")
        except BaseException:
            self.close()
            raise

    # --- ownership -----------------------------------------------------------------------------------------
    def _acquire(self) -> None:
        lock = self.path / self.LOCK
        for _ in range(10):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunFolderError(f"cannot write in the run folder {self.path} ({exc.strerror or exc}): choose "
                                     "another --out in a folder you can write to") from exc
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = _read_lock(lock)
                os.close(fd)
                raise RunFolderLockedError(
                    f"{self.path} is in use by {_owner_text(owner)}: wait for that run to finish, or choose another "
                    "--out (two processes writing one run folder would corrupt its logs)"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:  # the previous owner removed it between our open and our lock
                same = False
            if not same:
                os.close(fd)
                continue
            owner = _read_lock(lock)
            if owner and owner.get("host") not in (None, socket.gethostname()):
                os.close(fd)
                raise RunFolderLockedError(
                    f"{self.path} is locked by {_owner_text(owner)}, another machine, whose process this host cannot "
                    f"see: if no run is going on there, delete {lock} and rerun"
                )
            if owner:
                logger.warning("%s: taking over a stale lock of %s (that process is gone)", self.path,
                               _owner_text(owner))
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
            os.fsync(fd)
            self._lock_fd = fd
            return
        raise RunFolderLockedError(f"could not take the lock of {self.path}: other processes keep replacing it")

    def close(self) -> None:
        """Release the lock (remove ``run.lock``); a folder this process created and left empty is removed."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.remove(self.path / self.LOCK)
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
        if self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if empty

    def discard_unstarted(self) -> bool:
        """Remove what a fresh run wrote before its first training step (``options.json``, ``config.json``) when
        it failed before training, so that the corrected rerun may use the same ``--out``; returns whether it did.
        Folders this process did not create are left as they are."""
        if not self.created:
            return False
        names = {p.name for p in self.path.iterdir()} - {self.LOCK}
        if not names <= {"options.json", "config.json"}:
            return False
        for name in names:
            with contextlib.suppress(OSError):
                (self.path / name).unlink()
        return True

    @property
    def locked(self) -> bool:
        """Whether this object owns the folder."""
        return self._lock_fd is not None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def file(self, name: str) -> Path:
        """Path of ``name`` inside the folder."""
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON (non-finite floats become ``null``), atomically."""
        return write_json(self.file(name), _jsonable(obj))

    def read_json(self, name: str) -> Any:
        """The JSON in ``name`` (:func:`read_json_file`)."""
        return read_json_file(self.file(name))

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        """Records of a JSON-lines file (empty if it does not exist).

        A torn *last* line (a record cut off when its writer died) is dropped with a warning; any other line that
        is not a JSON object is a :class:`~pyro_nrg.errors.CheckpointError` naming the file and line.
        """
        path = self.file(name)
        if not path.exists():
            return []
        lines = path.read_bytes().split(b"\n")
        out = []
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                if all(not rest.strip() for rest in lines[i + 1:]):
                    logger.warning("%s: dropped a torn last line (a record cut off when its writer died)", path)
                    break
                raise CheckpointError(f"{path} line {i + 1} is damaged ({exc}): restore the file, or delete the "
                                      "damaged lines") from None
            out.append(rec)
        return out

    def rewrite_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Replace a JSON-lines file by ``records`` (atomically: temporary file + rename)."""
        write_text(self.file(name), "".join(json.dumps(_jsonable(r)) + "\n" for r in records))

    def cut_jsonl(self, name: str, step: int, key: str = "step") -> list[dict[str, Any]]:
        """Keep the records of ``name`` with ``record[key] <= step`` (each step once, in order: the last record of a
        step wins) and return them: a resumed run's logs end at its checkpoint's step."""
        by_step: dict[float, dict[str, Any]] = {}
        for rec in self.read_jsonl(name):
            value = rec.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise CheckpointError(f"{self.file(name)} has a record without a numeric {key!r} ({rec}): restore "
                                      "the file, or delete that line")
            if value <= step:
                by_step[value] = rec
        kept = [by_step[k] for k in sorted(by_step)]
        if self.file(name).exists():
            self.rewrite_jsonl(name, kept)
        return kept

    def append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append one record to a JSON-lines file."""
        with self.file(name).open("a") as fh:
            fh.write(json.dumps(_jsonable(record)) + "\n")

    def write_netcdf(self, name: str, idata: Any) -> Path:
        """Write an ArviZ ``InferenceData`` to netCDF via a temporary file and a rename (readers of the old file
        are not disturbed and a kill never leaves a torn file)."""
        return atomic_write(self.file(name), lambda tmp: idata.to_netcdf(str(tmp)))

    def save_figure(self, name: str, fig: Any, dpi: int = 110) -> str:
        """Save a matplotlib figure as PNG; returns the file name (for the report)."""
        fig.savefig(self.file(name), dpi=dpi)
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # noqa: BLE001 - figures built without pyplot need no closing
            pass
        return name

    def write_report(
        self,
        title: str,
        intro: Sequence[str],
        rows: Sequence[Row],
        figures: Sequence[tuple[str, str, str]],
        notes: Sequence[str] = (),
        header: Row = ("quantity", "value", "reference", "deviation"),
    ) -> Path:
        """Write ``report.md``: title, intro paragraphs, the summary table, then each figure with a caption.

        Args:
            figures: ``(heading, file name, caption)`` triples; files are linked relatively.
        """
        parts = [f"# {title}", "", *[f"{line}\n" for line in intro], markdown_table(rows, header), ""]
        for heading, name, caption in figures:
            parts += [f"## {heading}", "", f"![{heading}]({name})", "", caption, ""]
        if notes:
            parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
        path = self.file("report.md")
        path.write_text("\n".join(parts))
        return path


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; a :class:`~pyro_nrg.errors.CheckpointError` naming the file if it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is damaged (not JSON: {exc}): restore it, or start a new run in another "
                              "--out") from None


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _owner_text(owner: dict[str, Any]) -> str:
    if not owner:
        return "another process (its lock file names no owner yet)"
    return f"pid {owner.get('pid')} on host {owner.get('host')} (since {owner.get('started')})"


def markdown_table(rows: Iterable[Row], header: Row = ("quantity", "value", "reference", "deviation")) -> str:
    """A Markdown table of 4-column rows."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def console_table(rows: Sequence[Row], header: Row = ("quantity", "value", "reference", "deviation")) -> str:
    """A fixed-width text table of 4-column rows (fits one screen)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([fmt.format(*header), rule, *[fmt.format(*r) for r in rows]])


def fmt_value(value: float | None, err: float | None = None, digits: int = 5) -> str:
    """``value ± err`` with ``digits`` decimals (``-`` for None)."""
    if value is None or not math.isfinite(value):
        return "-"
    if err is None or not math.isfinite(err):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def fmt_rel(value: float | None, ref: float | None, err: float | None = None, ref_err: float | None = None) -> str:
    """Relative deviation from ``ref`` and, when errors are known, the z-score.

    An estimate whose own error is at least its magnitude (``err >= |value|``) measures nothing: no z-score is
    given, since a small one would read as agreement (``1e14 ± 1e14`` is "+1.0σ" from any reference).
    """
    if value is None or ref is None or not math.isfinite(value) or ref == 0:
        return ""
    rel = (value - ref) / abs(ref)
    s = f"{rel:+.2e}"
    if err is not None and math.isfinite(err) and err >= abs(value) > 0:
        return s + " (error ≥ |value|: not a measurement)"
    sig = math.hypot(err or 0.0, ref_err or 0.0)
    if sig > 0:
        s += f" ({(value - ref) / sig:+.1f}σ)"
    return s
