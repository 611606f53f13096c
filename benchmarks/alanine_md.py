"""Generate the alanine dipeptide data set shipped with the package (issue 25): independent Langevin runs at 300 K
from different backbone basins, cached one file per run, then thinned, stacked and written (float32 positions) to
``pyro_nrg/data/alanine_<solvent>.npz`` with the settings of every run and a checksum.

Usage:
    .venv/bin/python benchmarks/alanine_md.py                              # 3 x 250 ns vacuum (Reference platform)
    .venv/bin/python benchmarks/alanine_md.py --solvent implicit --duration-ns 10 --platform CPU
    .venv/bin/python benchmarks/alanine_md.py --quick                      # 3 x 0.2 ns, written to /tmp
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pyro_nrg.data.alanine import START_BASINS, AlanineSettings, load_alanine, ship_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--solvent", choices=("vacuum", "implicit"), default="vacuum")
    ap.add_argument("--duration-ns", type=float, default=250.0, help="length of each run")
    ap.add_argument("--platform", default="Reference")
    ap.add_argument("--save-every-ps", type=float, default=2.0, help="frame interval of the cached runs")
    ap.add_argument("--ship-every-ps", type=float, default=20.0, help="frame interval of the shipped file")
    ap.add_argument("--out", type=Path, default=None, help="default: pyro_nrg/data/alanine_<solvent>.npz")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.quick:
        args.duration_ns, args.out = 0.2, args.out or Path("/tmp/alanine_quick.npz")
    runs = []
    for seed, (basin, start) in enumerate(START_BASINS.items()):
        s = AlanineSettings(duration_ns=args.duration_ns, solvent=args.solvent, platform=args.platform,
                            save_every_ps=args.save_every_ps, seed=100 + seed, start_dihedrals=start)
        traj = load_alanine(s, cache_dir=args.cache_dir, progress=False)
        logging.info("run %d from %s: %s (%d frames, %.2f ns/min)", seed, basin, traj.path, traj.n_frames,
                     traj.md_ns_per_minute)
        runs.append(traj)
    out = ship_dataset(runs, args.ship_every_ps, args.out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
