"""Run folders and reports of the ``pyro-nrg`` studies: JSON, JSON lines, figures, a Markdown report, a console table.

A run folder holds everything a study produced, so a scientist can paste ``report.md`` (which links the PNGs next
to it) into a lab notebook, and a program can read ``summary.json``::

    runs/ising-L8-20261129-101500/
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

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..io import atomic_write, write_json

__all__ = ["RunFolder", "StudyOutcome", "Row", "console_table", "markdown_table", "fmt_value", "fmt_rel"]

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
    """The folder of one run; refuses to reuse a folder that holds a finished or started run unless resuming.

    Args:
        path: the folder (created with its parents).
        resume: continuing an earlier run in ``path`` (otherwise an existing ``config.json`` is an error).

    Raises:
        CheckpointError: ``path`` holds a run and ``resume`` is false.
    """

    def __init__(self, path: str | os.PathLike[str], resume: bool = False) -> None:
        self.path = Path(path)
        if (self.path / "options.json").exists() and not resume:
            raise CheckpointError(
                f"{self.path} already holds a run: pass --resume to continue it, or choose another --out "
                "(refusing to overwrite it)"
            )
        if resume and not (self.path / "options.json").exists():
            raise CheckpointError(f"nothing to resume in {self.path}: no options.json there (drop --resume)")
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        """Path of ``name`` inside the folder."""
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON (non-finite floats become ``null``), atomically."""
        return write_json(self.file(name), _jsonable(obj))

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        """Records of a JSON-lines file (empty if it does not exist)."""
        path = self.file(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

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
    """Relative deviation from ``ref`` and, when errors are known, the z-score."""
    if value is None or ref is None or not math.isfinite(value) or ref == 0:
        return ""
    rel = (value - ref) / abs(ref)
    s = f"{rel:+.2e}"
    sig = math.hypot(err or 0.0, ref_err or 0.0)
    if sig > 0:
        s += f" ({(value - ref) / sig:+.1f}σ)"
    return s
