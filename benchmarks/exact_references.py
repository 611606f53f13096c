"""Exact finite-lattice Ising references, a long Wolff reference at L=16, and the stored estimates re-scored.

Why: until now the L=8 <m^2> of the benchmarks was compared against a 20 000-update Wolff run (0.653787 +- 0.00345),
itself about +2 sigma off the exact value, and L=16 against 0.548372 +- 0.0027. This script

1. computes the exact <m^2>, <|m|>, <m^4> and the Binder cumulant U4 of the periodic L x L model at T_c for
   L = 4, 6, 8 (and 10) by the row transfer matrix with magnetisation tracking
   (pyro_nrg.energies.exact_ising_moments), with the measured cost per temperature (median over 5 temperatures
   near T_c, each a fresh computation);
2. runs one long Wolff chain at L=16 (and a shorter one at L=8 as a check of the Wolff code against the exact
   value), errors from 50 batch means;
3. re-scores every stored <m^2> estimate in benchmarks/results (any *.json below it, recursively, except this
   script's own output): z against the exact value where L <= 10, and against the long Wolff run at L=16, T_c,
   beside the z against the old short-Wolff references. The old JSON files are only read.

    python benchmarks/exact_references.py            # ~10 minutes on one core (the L=16 Wolff chain)
    python benchmarks/exact_references.py --quick    # seconds: short Wolff chains (exact_references/quick.json)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import RESULTS, table, write_result

from pyro_nrg.energies import ISING_TC, exact_ising_moments, wolff_ising

OLD_WOLFF = {8: (0.653786767578125, 0.0034497068820300274), 16: (0.5483717590332031, 0.0027002042857145357)}
"""The short (20 000-update) Wolff references the stored benchmarks were compared against."""

ESTIMATE_KEYS = (("m2_mean", "m2_err"), ("m2", "m2_err"), ("m2_ais", "m2_ais_err"), ("m2_flow_mh", "m2_flow_mh_err"))
SKIP = ("reference", "wolff", "headline", "settings", "exact")


def exact_table(sizes: list[int]) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
    """Exact moments at T_c and the median time of one fresh computation (5 temperatures near T_c)."""
    out, rows = {}, []
    for L in sizes:
        times = []
        for k in range(5):  # distinct temperatures: the transfer matrix result is cached per (L, T)
            t0 = time.perf_counter()
            exact_ising_moments(L, ISING_TC * (1.0 + 0.01 * (k + 1)))
            times.append(time.perf_counter() - t0)
        mom = exact_ising_moments(L, ISING_TC)
        out[str(L)] = {"m2": mom.m2, "abs_m": mom.abs_m, "m4": mom.m4, "binder": mom.binder, "log_z": mom.log_z,
                       "seconds_per_temperature": statistics.median(times)}
        rows.append((str(L), f"{mom.m2:.12f}", f"{mom.abs_m:.12f}", f"{mom.m4:.12f}", f"{mom.binder:.12f}",
                     f"{statistics.median(times):.3g}"))
    return out, rows


def wolff_reference(L: int, n_updates: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    w = wolff_ising(L, ISING_TC, n_updates=n_updates, n_therm=5000, seed=seed, n_batches=50)
    return {"L": L, "updates": w.updates, "seed": seed, "m2": w.m2, "m2_err": w.m2_err, "abs_m": w.abs_m,
            "abs_m_err": w.abs_m_err, "energy_per_site": w.energy_per_site,
            "energy_per_site_err": w.energy_per_site_err,
            "mean_cluster_fraction": w.mean_cluster_fraction, "seconds": time.perf_counter() - t0}


def _z(value: float, err: float, ref: float, ref_err: float) -> float:
    return (value - ref) / math.sqrt(err * err + ref_err * ref_err)


def stored_estimates(results: Path, exclude: str) -> list[dict[str, Any]]:
    """Every <m^2> estimate with an error bar in the stored JSON files, with its lattice size and temperature."""
    found = []

    def walk(obj: Any, path: str, L: int | None, T: float, parent: dict | None, name: str, file: str,
             tag: str) -> None:
        if isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]", L, T, parent, name, file, tag)
            return
        if not isinstance(obj, dict):
            return
        L = int(obj["L"]) if isinstance(obj.get("L"), int) else L
        T = float(obj.get("T", obj.get("temperature", T)))
        for k in ("flow", "method"):
            if isinstance(obj.get(k), str):
                tag = f"{tag}/{obj[k]}" if tag else obj[k]
        for key, err_key in ESTIMATE_KEYS:
            v, e = obj.get(key), obj.get(err_key)
            if isinstance(v, float) and isinstance(e, float) and L is not None:
                stored = [obj[k] for k in obj if k.startswith("m2_z")]
                if not stored and parent is not None:
                    stored = [parent[k] for k in parent if k == f"m2_z_{name}"]
                label = tag or path.rsplit("/", 1)[-1]
                if key not in ("m2_mean", "m2"):
                    label = f"{label}/{key.removeprefix('m2_')}"
                found.append({"file": file, "path": f"{path}/{key}", "label": label, "L": L, "T": T, "m2": v,
                              "m2_err": e, "stored_z": stored[0] if stored else None})
        for k, v in obj.items():
            if any(s in k for s in SKIP):
                continue
            sub_L = int(k) if k.isdigit() else L
            walk(v, f"{path}/{k}", sub_L, T, obj, k, file, tag)

    for f in sorted(results.rglob("*.json")):
        if f.parent.name == exclude:
            continue
        blob = json.loads(f.read_text())
        settings = blob.get("settings", {}) if isinstance(blob, dict) else {}
        L0 = settings.get("L") if isinstance(settings.get("L"), int) else None
        T0 = float(settings["temperature"]) if isinstance(settings.get("temperature"), float) else ISING_TC
        walk(blob.get("figures", {}), "figures", L0, T0, None, "", str(f.relative_to(results)), "")
    return found


def rescore(found: list[dict[str, Any]], long_wolff: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in found:
        L, T = r["L"], r["T"]
        if L <= 10:
            ref, ref_err, kind = exact_ising_moments(L, T).m2, 0.0, "exact"
        elif T == ISING_TC and L in long_wolff:
            ref, ref_err, kind = long_wolff[L]["m2"], long_wolff[L]["m2_err"], "long Wolff"
        else:
            continue
        r = dict(r, reference=kind, reference_m2=ref, reference_m2_err=ref_err,
                 z=_z(r["m2"], r["m2_err"], ref, ref_err))
        if T == ISING_TC and L in OLD_WOLFF:
            r["z_vs_old_wolff"] = _z(r["m2"], r["m2_err"], *OLD_WOLFF[L])
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wolff-updates-l16", type=int, default=8_000_000)
    ap.add_argument("--wolff-updates-l8", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument("--quick", action="store_true", help="L <= 8 exact, 20 000-update Wolff chains")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sizes = [4, 6, 8] if args.quick else [4, 6, 8, 10]
    if args.quick:
        args.wolff_updates_l16 = args.wolff_updates_l8 = 20_000
    name = "exact_references_quick" if args.quick else "exact_references"

    exact, rows = exact_table(sizes)
    print(f"Exact moments of the periodic L x L Ising model at T_c = {ISING_TC:.12f} (row transfer matrix)")
    print(table(rows, ("L", "<m2>", "<|m|>", "<m4>", "U4", "s / temperature")))

    long_wolff = {L: wolff_reference(L, n, args.seed) for L, n in ((8, args.wolff_updates_l8),
                                                                     (16, args.wolff_updates_l16))}
    w8, w16 = long_wolff[8], long_wolff[16]
    z8 = _z(w8["m2"], w8["m2_err"], exact["8"]["m2"], 0.0)
    z8_abs = _z(w8["abs_m"], w8["abs_m_err"], exact["8"]["abs_m"], 0.0)
    print(f"\nWolff L=8  ({w8['updates']} updates, {w8['seconds']:.0f} s): <m2> = {w8['m2']:.6f} ± {w8['m2_err']:.6f} "
          f"({z8:+.2f} sigma vs exact), <|m|> {z8_abs:+.2f} sigma")
    print(f"Wolff L=16 ({w16['updates']} updates, {w16['seconds']:.0f} s): <m2> = {w16['m2']:.6f} ± "
          f"{w16['m2_err']:.6f}; old reference {OLD_WOLFF[16][0]:.6f} ± {OLD_WOLFF[16][1]:.4f} is "
          f"{_z(*OLD_WOLFF[16], w16['m2'], w16['m2_err']):+.2f} sigma off it")
    old8 = _z(*OLD_WOLFF[8], exact["8"]["m2"], 0.0)
    print(f"old L=8 Wolff reference {OLD_WOLFF[8][0]:.6f} ± {OLD_WOLFF[8][1]:.5f} is {old8:+.2f} sigma off the exact "
          f"value")

    scored = rescore(stored_estimates(RESULTS, "exact_references"), long_wolff)
    srows = [(r["file"], r["label"], str(r["L"]), f"{r['T']:.4g}", f"{r['m2']:.4f} ± {r['m2_err']:.4f}",
              "-" if r.get("z_vs_old_wolff") is None else f"{r['z_vs_old_wolff']:+.2f}",
              f"{r['z']:+.2f}", r["reference"]) for r in scored]
    print("\nStored <m2> estimates re-scored (z: against the exact value for L <= 10, the long Wolff run at L=16)")
    print(table(srows, ("file", "estimate", "L", "T", "<m2>", "z vs old Wolff", "z new", "reference")))

    headline = {f"L{L}_{k}_exact": v[k] for L, v in exact.items() for k in ("m2", "abs_m", "m4", "binder")}
    headline.update({
        "L8_exact_seconds_per_temperature": exact["8"]["seconds_per_temperature"],
        "L16_m2_wolff_long": w16["m2"], "L16_m2_wolff_long_err": w16["m2_err"],
        "L16_wolff_long_updates": w16["updates"],
        "L8_m2_wolff_long_z_vs_exact": z8,
        "L8_old_wolff_reference_z_vs_exact": old8,
        "L16_old_wolff_reference_z_vs_long": _z(*OLD_WOLFF[16], w16["m2"], w16["m2_err"]),
        "max_abs_z_stored_L8_Tc": max((abs(r["z"]) for r in scored if r["L"] == 8 and r["T"] == ISING_TC),
                                      default=None),
    })
    if "10" in exact:
        headline["L10_exact_seconds_per_temperature"] = exact["10"]["seconds_per_temperature"]
    settings = {"quick": args.quick, "temperature": ISING_TC, "exact_sizes": sizes,
                "exact_method": "row transfer matrix with magnetisation tracking, float64 (exact_ising_moments)",
                "wolff": {"updates_l8": args.wolff_updates_l8, "updates_l16": args.wolff_updates_l16, "n_therm": 5000,
                          "batches": 50, "seed": args.seed},
                "old_wolff_references": {str(k): v for k, v in OLD_WOLFF.items()},
                "rescored": "every figures/... <m2> estimate with an error in benchmarks/results/**/*.json"}
    path = write_result(name, settings, {"exact": exact, "wolff": {str(k): v for k, v in long_wolff.items()},
                                         "rescored": scored}, headline)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
