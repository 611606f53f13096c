"""Shared helpers of the benchmark scripts: machine description, timing, JSON output."""

from __future__ import annotations

import inspect
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Cores, torch version, device and threads of this run."""
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def median_time(fn: Callable[[], Any], repeats: int = 7, warmup: int = 2) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls (seconds) and all times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def result_path(name: str, script: str) -> Path:
    """Where result ``name`` of benchmark ``script`` lives: ``benchmarks/results/SCRIPT/VARIANT.json``.

    ``VARIANT`` is ``name`` without the script's own prefix (``sampling_head_spline`` of ``sampling.py`` ->
    ``sampling/head_spline.json``); the script's default run is ``full.json`` and its ``--quick`` run ``quick.json``.
    """
    variant = name.removeprefix(script).lstrip("_") if name.startswith(script) else name
    return RESULTS / script / f"{variant or 'full'}.json"


def read_result(script: str, name: str | None = None) -> dict[str, Any]:
    """The stored JSON of ``script``'s result ``name`` (default: its full run), as written by :func:`write_result`."""
    return json.loads(result_path(name or script, script).read_text())


def write_result(name: str, settings: dict[str, Any], figures: dict[str, Any], headline: dict[str, Any],
                 script: str | None = None) -> Path:
    """Write the result ``name`` with machine, settings, figures and headline numbers; return its path.

    The file is ``benchmarks/results/SCRIPT/VARIANT.json`` (:func:`result_path`), ``SCRIPT`` being the benchmark
    script that calls this (its file name) unless given.
    """
    if script is None:
        frame = inspect.currentframe()
        script = Path(frame.f_back.f_code.co_filename).stem if frame and frame.f_back else "misc"
    path = result_path(name, script)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "name": name,
        "script": script,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "settings": settings,
        "headline": headline,
        "figures": figures,
    }
    path.write_text(json.dumps(blob, indent=2, default=float))
    return path


def m2_reference(L: int, temperature: float, wolff_updates: int, seed: int = 0) -> dict[str, Any]:
    """The <m^2> an estimate is scored against: exact (row transfer matrix) for L <= 10, else a Wolff run.

    Returns ``{"m2", "m2_err", "kind", "updates"}`` (``m2_err`` 0 and ``updates`` 0 for the exact value) and, for a
    Wolff run, its energy per site ``e``, ``e_err``.
    """
    from pyro_nrg.energies import IsingRelaxed, wolff_ising
    from pyro_nrg.errors import NoExactSolutionError

    try:
        return {"m2": float(IsingRelaxed(L, temperature).exact_m2()), "m2_err": 0.0,
                "kind": "exact (transfer matrix)", "updates": 0}
    except NoExactSolutionError:
        w = wolff_ising(L, temperature, n_updates=wolff_updates, seed=seed)
        return {"m2": w.m2, "m2_err": w.m2_err, "kind": f"Wolff ({w.updates} updates)", "updates": w.updates,
                "e": w.energy_per_site, "e_err": w.energy_per_site_err}


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A plain-text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{w}s}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)
