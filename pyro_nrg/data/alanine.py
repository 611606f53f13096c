r"""Alanine dipeptide (Ace-Ala-NMe) trajectories from OpenMM Langevin dynamics, cached on disk.

The data of the neural canonical transformation paper's molecular example (Li, Dong, Zhang & Wang, PRX 10,
021020 (2020), Sec. V C), made here from scratch: the molecule and its Amber force field come from openmmtools'
``AlanineDipeptideVacuum`` (or ``...Implicit``), dynamics from OpenMM's ``LangevinMiddleIntegrator``.

Pipeline of :func:`generate_alanine` (settings in :class:`AlanineSettings`):

1. energy minimisation, velocities from Maxwell–Boltzmann at :math:`T`, ``equilibration_ps`` of dynamics;
2. ``duration_ns`` of Langevin dynamics (time step ``timestep_fs``, friction ``friction_per_ps``, bonds to
   hydrogen constrained), one frame every ``save_every_ps``; a tqdm progress bar (off when not a terminal);
3. the 10 heavy atoms (30 coordinates) are kept and rigid-body motion is removed by Kabsch alignment onto the
   minimised structure (:func:`~pyro_nrg.data.geometry.kabsch_align`);
4. the backbone dihedrals :math:`\phi` = C(Ace)–N–CA–C and :math:`\psi` = N–CA–C–N(NMe) (radians).

:func:`load_alanine` caches the result as ``.npz`` with the settings and a checksum
(:mod:`pyro_nrg.data.cache`) and reuses it when the settings match. :func:`alanine_fixture` loads a tiny trajectory
shipped with the package (made by :func:`make_fixture`), for tests and smoke runs without OpenMM.

**Choice of system.** Explicit solvent (the paper's data) is orders of magnitude slower than vacuum on a small
CPU, and for a 22-atom system OpenMM's ``Reference`` platform beats its ``CPU`` platform (per-step thread overhead
dominates); the speeds measured on this project's machine are in ``docs/physics.md`` ("Alanine dipeptide"). So the
default is vacuum at 300 K, 30 ns (a few minutes): it switches between the C7eq (:math:`\phi \approx -80°`,
:math:`\psi \approx 70°`) and C5/β (:math:`\phi \approx -150°`, :math:`\psi \approx 160°`) basins many times and
visits :math:`\alpha_R` (:math:`\psi \approx -50°`) briefly; the :math:`\phi > 0` basins (C7ax, :math:`\alpha_L`)
hold only a small fraction of the frames. A higher temperature was not used, so that positions and the
Maxwell–Boltzmann momenta of the density estimate share the same 300 K ensemble.

OpenMM and openmmtools are optional (``pip install "pyro-nrg[md]"``) and imported only inside
:func:`generate_alanine`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataSettingsError, EventShapeError, MissingDependencyError
from .cache import load_arrays, load_or_generate, save_arrays, settings_key
from .geometry import RigidBodyProjection, dihedral, kabsch_align

__all__ = [
    "AlanineSettings",
    "AlanineTrajectory",
    "generate_alanine",
    "load_alanine",
    "alanine_fixture",
    "alanine_dataset",
    "ship_dataset",
    "DATASETS",
    "START_BASINS",
    "make_fixture",
    "md_speed",
    "default_cache_dir",
    "FIXTURE_SETTINGS",
    "PHI_ATOMS",
    "PSI_ATOMS",
]

logger = logging.getLogger(__name__)

#: (residue, atom name) of the four atoms of each backbone dihedral.
PHI_ATOMS = (("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C"))
PSI_ATOMS = (("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N"))

_FIXTURE_FILE = "alanine_tiny.npz"

#: Start basins ``(phi, psi)`` in degrees of the independent runs of the shipped data set: C7eq, C5/beta and C7ax
#: (the last on the phi > 0 side, which vacuum dynamics at 300 K rarely reaches from the others).
START_BASINS: dict[str, tuple[float, float]] = {"C7eq": (-80.0, 70.0), "C5": (-150.0, 160.0), "C7ax": (70.0, -70.0)}


@dataclass(frozen=True)
class AlanineSettings:
    """Everything that determines a trajectory (the cache key).

    Attributes:
        temperature: kelvin (thermostat and initial velocities).
        duration_ns: production length.
        timestep_fs: integrator step.
        friction_per_ps: Langevin collision rate.
        save_every_ps: interval between stored frames.
        equilibration_ps: dynamics discarded before production.
        solvent: ``"vacuum"`` or ``"implicit"`` (OBC GBSA, openmmtools' ``AlanineDipeptideImplicit``).
        platform: OpenMM platform name (``"Reference"`` is fastest for this system on a CPU, see module doc).
        seed: seeds the velocities and the integrator's noise (``Reference`` runs are then reproducible).
        start_dihedrals: ``(phi, psi)`` in degrees, or ``None``. If given, the minimised molecule is first pulled
            into that backbone basin by a harmonic torsion restraint (``start_restraint_ps`` of dynamics, force
            constant 500 kJ/mol/rad²), which is then switched off before equilibration and production, so that
            independent runs can start from different basins.
        start_restraint_ps: length of the restrained pre-equilibration (only with ``start_dihedrals``).
    """

    temperature: float = 300.0
    duration_ns: float = 30.0
    timestep_fs: float = 2.0
    friction_per_ps: float = 1.0
    save_every_ps: float = 1.0
    equilibration_ps: float = 100.0
    solvent: str = "vacuum"
    platform: str = "Reference"
    seed: int = 0
    start_dihedrals: tuple[float, float] | None = None
    start_restraint_ps: float = 20.0

    def __post_init__(self) -> None:
        if self.start_dihedrals is not None:
            if len(self.start_dihedrals) != 2 or not all(math.isfinite(a) for a in self.start_dihedrals):
                raise DataSettingsError(
                    f"start_dihedrals must be (phi, psi) in degrees, got {self.start_dihedrals!r}"
                )
            object.__setattr__(self, "start_dihedrals", tuple(float(a) for a in self.start_dihedrals))
        if self.solvent not in ("vacuum", "implicit"):
            raise DataSettingsError(f"solvent must be 'vacuum' or 'implicit', got {self.solvent!r}")
        for name in ("temperature", "duration_ns", "timestep_fs", "save_every_ps"):
            if not getattr(self, name) > 0:
                raise DataSettingsError(f"AlanineSettings.{name} must be positive, got {getattr(self, name)!r}")
        if self.steps_per_frame < 1:
            raise DataSettingsError(
                f"save_every_ps={self.save_every_ps} is shorter than one time step ({self.timestep_fs} fs): "
                f"use save_every_ps >= {self.timestep_fs / 1000}"
            )

    def cache_key(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict; the start fields only when a start basin is set (so caches made
        before they existed keep their names)."""
        key = asdict(self)
        if self.start_dihedrals is None:
            key.pop("start_dihedrals")
            key.pop("start_restraint_ps")
        else:
            key["start_dihedrals"] = list(self.start_dihedrals)
        return key

    @property
    def steps_per_frame(self) -> int:
        return int(round(self.save_every_ps * 1000 / self.timestep_fs))

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration_ns * 1000 / self.save_every_ps)))


#: Settings of the tiny fixture shipped with the package (300 frames, 30 ps).
FIXTURE_SETTINGS = AlanineSettings(duration_ns=0.03, save_every_ps=0.1, equilibration_ps=5.0, seed=7)


@dataclass
class AlanineTrajectory:
    r"""A heavy-atom trajectory of alanine dipeptide.

    Attributes:
        positions: ``(N, 10, 3)`` aligned, centred heavy-atom coordinates (Å).
        phi, psi: ``(N,)`` backbone dihedrals (radians, :math:`(-\pi, \pi]`).
        time_ps: ``(N,)`` time of each frame.
        masses: ``(10,)`` atomic masses (amu).
        atom_names: ``(10,)`` ``"RES:NAME"`` labels.
        bonds: ``(B, 2)`` heavy-atom bonds (indices into the 10 atoms).
        reference: ``(10, 3)`` the alignment reference (minimised structure, centred).
        settings: the :class:`AlanineSettings`.
        md_ns_per_minute: measured production speed (ns of dynamics per wall-clock minute).
        seconds: production wall time (files written before this name was chosen call it ``wall_time_s``).
        generated: ``True`` if made by this call, ``False`` if read from the cache.
        run: ``(N,)`` index of the independent run each frame comes from (data sets of several runs, see
            :func:`alanine_dataset`; ``None`` for one run).
        run_settings: the exact settings of each run (seeds, start basins); ``settings`` then describes the
            ensemble (solvent, temperature, integrator) with the total length and the stored frame interval.
    """

    positions: np.ndarray
    phi: np.ndarray
    psi: np.ndarray
    time_ps: np.ndarray
    masses: np.ndarray
    atom_names: np.ndarray
    bonds: np.ndarray
    reference: np.ndarray
    settings: AlanineSettings
    md_ns_per_minute: float = float("nan")
    seconds: float = float("nan")
    generated: bool = False
    path: Path | None = field(default=None, repr=False)
    run: np.ndarray | None = None
    run_settings: tuple[AlanineSettings, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def dihedral_atoms(self) -> dict[str, tuple[int, int, int, int]]:
        """Indices (into the 10 heavy atoms) of the atoms of φ and ψ."""
        return {"phi": _indices(self.atom_names, PHI_ATOMS), "psi": _indices(self.atom_names, PSI_ATOMS)}

    def projection(self, time_unit_ps: float = 1 / 30) -> RigidBodyProjection:
        """The :class:`~pyro_nrg.data.geometry.RigidBodyProjection` (24 internal coordinates, mean-centred).

        The default time unit, 1/30 ps, puts the balanced mode widths of
        :func:`~pyro_nrg.distributions.pca_canonical_flow` between about 0.3 and 3 (frequencies in rad per unit).
        """
        proj = RigidBodyProjection(self.reference, self.masses, self.settings.temperature, time_unit_ps=time_unit_ps)
        return proj.fit(self.positions)

    def dihedrals(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """φ, ψ (radians) of any heavy-atom frames ``(*batch, 10, 3)``."""
        return _dihedrals(positions, self.atom_names)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "positions": self.positions,
            "phi": self.phi,
            "psi": self.psi,
            "time_ps": self.time_ps,
            "masses": self.masses,
            "atom_names": self.atom_names,
            "bonds": self.bonds,
            "reference": self.reference,
            "md_ns_per_minute": np.array(self.md_ns_per_minute),
            "seconds": np.array(self.seconds),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], settings: AlanineSettings, generated: bool = False,
                    path: Path | None = None) -> AlanineTrajectory:
        return cls(
            positions=arrays["positions"],
            phi=arrays["phi"],
            psi=arrays["psi"],
            time_ps=arrays["time_ps"],
            masses=arrays["masses"],
            atom_names=arrays["atom_names"],
            bonds=arrays["bonds"],
            reference=arrays["reference"],
            settings=settings,
            md_ns_per_minute=float(arrays["md_ns_per_minute"]),
            seconds=float(arrays["seconds"] if "seconds" in arrays else arrays["wall_time_s"]),
            generated=generated,
            path=path,
        )


def _indices(atom_names: np.ndarray, which: tuple[tuple[str, str], ...]) -> tuple[int, int, int, int]:
    names = [str(a) for a in atom_names]
    try:
        return tuple(names.index(f"{res}:{name}") for res, name in which)  # type: ignore[return-value]
    except ValueError as e:
        raise EventShapeError(f"atom {e} not among the heavy atoms {names}: is this alanine dipeptide?") from None


def _dihedrals(positions: np.ndarray, atom_names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(positions, dtype=np.float64)
    out = []
    for which in (PHI_ATOMS, PSI_ATOMS):
        i = _indices(atom_names, which)
        out.append(dihedral(x[..., i[0], :], x[..., i[1], :], x[..., i[2], :], x[..., i[3], :]))
    return out[0], out[1]


def default_cache_dir() -> Path:
    """``$PYRO_NRG_CACHE`` if set, else ``~/.cache/pyro_nrg``."""
    return Path(os.environ.get("PYRO_NRG_CACHE", Path.home() / ".cache" / "pyro_nrg"))


def _import_openmm() -> tuple[Any, Any, Any, Any]:
    try:
        # openmmtools imports pymbar, which prints a banner about JAX on import; keep it out of our output
        noisy = logging.getLogger("pymbar")
        level = noisy.level
        noisy.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import openmm
                import openmm.app as app
                import openmm.unit as unit
                from openmmtools import testsystems
        finally:
            noisy.setLevel(level)
    except ImportError as e:
        raise MissingDependencyError(
            f"generating alanine dipeptide trajectories needs OpenMM and openmmtools ({e}): "
            'pip install "pyro-nrg[md]" (or use alanine_fixture() for the tiny bundled trajectory)'
        ) from e
    return openmm, app, unit, testsystems


def _make_simulation(settings: AlanineSettings) -> tuple[Any, Any, Any, Any]:
    openmm, app, unit, testsystems = _import_openmm()
    cls = testsystems.AlanineDipeptideVacuum if settings.solvent == "vacuum" else testsystems.AlanineDipeptideImplicit
    with contextlib.redirect_stdout(io.StringIO()):
        ts = cls(constraints=app.HBonds)
    if settings.start_dihedrals is not None:
        _add_start_restraint(openmm, ts, settings.start_dihedrals)
    integ = openmm.LangevinMiddleIntegrator(
        settings.temperature * unit.kelvin, settings.friction_per_ps / unit.picosecond,
        settings.timestep_fs * unit.femtosecond,
    )
    integ.setRandomNumberSeed(settings.seed + 1)  # 0 would mean "pick a random seed"
    platform = openmm.Platform.getPlatformByName(settings.platform)
    props = {"Threads": "1"} if settings.platform == "CPU" else {}
    ctx = openmm.Context(ts.system, integ, platform, props)
    ctx.setPositions(ts.positions)
    return ctx, integ, ts, unit


_RESTRAINT_K = "pyro_nrg_start_k"


def _add_start_restraint(openmm: Any, ts: Any, start: tuple[float, float]) -> None:
    """Add harmonic restraints on phi and psi towards ``start`` (degrees), strength the global parameter
    :data:`_RESTRAINT_K` (kJ/mol/rad^2; set to zero to switch them off)."""
    atoms = {(a.residue.name, a.name): a.index for a in ts.topology.atoms()}
    force = openmm.CustomTorsionForce(f"0.5*{_RESTRAINT_K}*min(dtheta, 2*pi-dtheta)^2; "
                                      "dtheta = abs(theta-theta0); pi = 3.141592653589793")
    force.addGlobalParameter(_RESTRAINT_K, 0.0)  # off while minimising: one reference
    force.addPerTorsionParameter("theta0")
    for which, angle in zip((PHI_ATOMS, PSI_ATOMS), start):
        force.addTorsion(*(atoms[w] for w in which), [math.radians(angle)])
    ts.system.addForce(force)


def md_speed(settings: AlanineSettings | None = None, ps: float = 10.0) -> float:
    """Measured speed of the dynamics of ``settings`` (platform, solvent, time step) in ns per wall-clock minute.

    Runs ``ps`` picoseconds after 200 warm-up steps (positions are not read back).
    """
    s = settings or AlanineSettings()
    ctx, integ, _, _ = _make_simulation(s)
    integ.step(200)
    n = max(1, int(round(ps * 1000 / s.timestep_fs)))
    t0 = time.perf_counter()
    integ.step(n)
    dt = time.perf_counter() - t0
    del ctx
    return n * s.timestep_fs * 1e-6 / (dt / 60)


def generate_alanine(settings: AlanineSettings | None = None, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Run the MD of ``settings`` and return the arrays of an :class:`AlanineTrajectory` (no caching).

    Args:
        settings: :class:`AlanineSettings` (default: 30 ns vacuum at 300 K).
        progress: tqdm progress bar (``None``: only when attached to a terminal).

    Raises:
        MissingDependencyError: OpenMM/openmmtools are not installed.
    """
    from tqdm.auto import tqdm

    s = settings or AlanineSettings()
    openmm, _, _, _ = _import_openmm()
    ctx, integ, ts, unit = _make_simulation(s)
    system, top = ts.system, ts.topology
    heavy = [a.index for a in top.atoms() if a.element.symbol != "H"]
    names = np.array([f"{a.residue.name}:{a.name}" for a in top.atoms() if a.element.symbol != "H"])
    local = {g: i for i, g in enumerate(heavy)}
    bonds = np.array(sorted((local[b[0].index], local[b[1].index]) for b in top.bonds()
                            if b[0].index in local and b[1].index in local), dtype=np.int64)
    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in heavy])

    openmm.LocalEnergyMinimizer.minimize(ctx)
    ang = unit.angstrom
    reference = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(ang)[heavy]
    reference = reference - reference.mean(0)
    if s.start_dihedrals is not None:  # minimise again under the restraint: no violent first steps
        ctx.setParameter(_RESTRAINT_K, 500.0)
        openmm.LocalEnergyMinimizer.minimize(ctx)
    ctx.setVelocitiesToTemperature(s.temperature * unit.kelvin, s.seed + 1)
    if s.start_dihedrals is not None:
        integ.step(int(round(s.start_restraint_ps * 1000 / s.timestep_fs)))
        ctx.setParameter(_RESTRAINT_K, 0.0)
    n_eq = int(round(s.equilibration_ps * 1000 / s.timestep_fs))
    if n_eq:
        integ.step(n_eq)

    n_frames, per = s.n_frames, s.steps_per_frame
    frames = np.empty((n_frames, len(heavy), 3))
    t0 = time.perf_counter()
    for i in tqdm(range(n_frames), desc=f"alanine MD ({s.duration_ns:g} ns)", unit="frame",
                  disable=None if progress is None else not progress, mininterval=1.0):
        integ.step(per)
        frames[i] = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(ang)[heavy]
    wall = time.perf_counter() - t0
    del ctx

    aligned = kabsch_align(frames, reference)
    phi, psi = _dihedrals(aligned, names)
    ns = n_frames * per * s.timestep_fs * 1e-6
    logger.info("alanine MD: %.3f ns in %.1f s (%.2f ns/min)", ns, wall, ns / (wall / 60))
    return {
        "positions": aligned,
        "phi": phi,
        "psi": psi,
        "time_ps": (np.arange(n_frames) + 1) * s.save_every_ps,
        "masses": masses,
        "atom_names": names,
        "bonds": bonds,
        "reference": reference,
        "md_ns_per_minute": np.array(ns / (wall / 60) if wall > 0 else math.inf),
        "seconds": np.array(wall),
    }


def load_alanine(
    settings: AlanineSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    regenerate: bool = False,
    progress: bool | None = None,
) -> AlanineTrajectory:
    """The trajectory of ``settings``, from the cache if it holds one with the same settings, else generated.

    The file is ``cache_dir/alanine_<settings hash>.npz`` (default dir: :func:`default_cache_dir`).

    Raises:
        DataCacheError: the cache file is corrupt (pass ``regenerate=True`` to overwrite it).
        MissingDependencyError: generation is needed but OpenMM is not installed.
    """
    s = settings or AlanineSettings()
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = s.cache_key()
    path = d / f"alanine_{settings_key(key)}.npz"
    arrays, generated = load_or_generate(path, key, lambda: generate_alanine(s, progress), regenerate=regenerate)
    return AlanineTrajectory.from_arrays(arrays, s, generated=generated, path=path)


def ship_dataset(runs: list[AlanineTrajectory], every_ps: float, path: str | os.PathLike | None = None) -> Path:
    """Thin independent runs to one frame every ``every_ps``, stack them and save them (float32 positions) with
    the settings of every run; read back by :func:`alanine_dataset`."""
    if not runs:
        raise DataSettingsError("ship_dataset needs at least one run")
    solvents = {r.settings.solvent for r in runs}
    if len(solvents) != 1:
        raise DataSettingsError(f"runs of one data set must share the solvent, got {sorted(solvents)}")
    ref = runs[0].reference
    parts: dict[str, list[np.ndarray]] = {"positions": [], "phi": [], "psi": [], "time_ps": [], "run": []}
    for i, r in enumerate(runs):
        if not np.allclose(r.reference, ref, atol=1e-6):
            raise DataSettingsError("runs of one data set must share the alignment reference (minimised structure)")
        stride = int(round(every_ps / r.settings.save_every_ps))
        if stride < 1 or abs(stride * r.settings.save_every_ps - every_ps) > 1e-9:
            raise DataSettingsError(
                f"every_ps={every_ps} is not a multiple of the run's frame interval {r.settings.save_every_ps} ps"
            )
        sl = slice(stride - 1, None, stride)
        parts["positions"].append(r.positions[sl].astype(np.float32))
        for k in ("phi", "psi", "time_ps"):
            parts[k].append(getattr(r, k)[sl])
        parts["run"].append(np.full(len(parts["phi"][-1]), i, dtype=np.int8))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays.update(masses=runs[0].masses, atom_names=runs[0].atom_names, bonds=runs[0].bonds, reference=ref,
                  md_ns_per_minute=np.array([r.md_ns_per_minute for r in runs]),
                  seconds=np.array([r.seconds for r in runs]))
    settings = {"every_ps": every_ps, "runs": [r.settings.cache_key() for r in runs]}
    solvent = solvents.pop()
    path = Path(path) if path is not None else Path(str(resources.files("pyro_nrg.data"))) / f"alanine_{solvent}.npz"
    return save_arrays(path, arrays, settings)


#: The data sets shipped with the package: file name, SHA-256 of the file's arrays and settings (the checksum
#: :mod:`~pyro_nrg.data.cache` stores and verifies), and a one-line description.
DATASETS: dict[str, dict[str, str]] = {
    "vacuum": {
        "file": "alanine_vacuum.npz",
        "checksum": "a472618fe65b3f314154084b8ed6c0a71db5f852cf18ae660aed9ed471879ad4",
        "description": "3 x 250 ns vacuum, 300 K, from C7eq, C5 and C7ax; a frame every 20 ps (37 500 frames)",
    },
    "implicit": {
        "file": "alanine_implicit.npz",
        "checksum": "1ce1983ebc56426f7d89ea63ed95c60a8f2ea3990e47ebdd27dca2b8b94e9978",
        "description": "3 x 2 ns OBC implicit solvent (CPU platform), 300 K, same starts; a frame every 2 ps (3000)",
    },
}


def _dataset_path(solvent: str) -> Path:
    return Path(str(resources.files("pyro_nrg.data").joinpath(DATASETS[solvent]["file"])))


def alanine_dataset(solvent: str = "vacuum") -> AlanineTrajectory:
    """The alanine dipeptide data set shipped with the package (no OpenMM needed).

    ``"vacuum"``: three independent 250 ns Langevin runs at 300 K from the C7eq, C5 and C7ax basins
    (:data:`START_BASINS`), one frame every 20 ps, float32 positions (made by ``benchmarks/alanine_md.py``).
    ``"implicit"``: the same three starts in OBC implicit solvent, 2 ns each (what this project's CPU made beside
    the vacuum runs), one frame every 2 ps. :data:`DATASETS` describes each.
    The checksum stored in the file is verified on load and compared with :data:`DATASETS`.

    Raises:
        DataSettingsError: no data set for this solvent ships with the package.
        DataCacheError: the file fails its checksum.
    """
    if solvent not in DATASETS:
        raise DataSettingsError(
            f"no alanine data set for solvent {solvent!r} ships with pyro_nrg (available: {sorted(DATASETS)}): "
            "generate one with load_alanine(AlanineSettings(solvent=...))"
        )
    path = _dataset_path(solvent)
    arrays, settings = load_arrays(path, expected=DATASETS[solvent]["checksum"])
    runs = tuple(AlanineSettings(**r) for r in settings["runs"])
    first = runs[0]
    ensemble = AlanineSettings(
        temperature=first.temperature, duration_ns=sum(r.duration_ns for r in runs), timestep_fs=first.timestep_fs,
        friction_per_ps=first.friction_per_ps, save_every_ps=settings["every_ps"],
        equilibration_ps=first.equilibration_ps, solvent=first.solvent, platform=first.platform, seed=first.seed,
    )
    speeds, walls = arrays["md_ns_per_minute"], arrays["seconds"]
    arrays = {**arrays, "positions": arrays["positions"].astype(np.float64),
              "md_ns_per_minute": np.array(float(np.median(speeds))), "seconds": np.array(float(walls.sum()))}
    traj = AlanineTrajectory.from_arrays(arrays, ensemble, generated=False, path=path)
    traj.run = arrays["run"].astype(np.int64)
    traj.run_settings = runs
    return traj


def _fixture_path() -> Path:
    return Path(str(resources.files("pyro_nrg.data").joinpath(_FIXTURE_FILE)))


def make_fixture(path: str | os.PathLike | None = None, progress: bool | None = False) -> Path:
    """(Re)generate the tiny bundled trajectory (:data:`FIXTURE_SETTINGS`, 300 frames; needs OpenMM)."""
    path = Path(path) if path is not None else _fixture_path()
    arrays = generate_alanine(FIXTURE_SETTINGS, progress)
    arrays = {k: (v.astype(np.float32) if k == "positions" else v) for k, v in arrays.items()}
    return save_arrays(path, arrays, asdict(FIXTURE_SETTINGS))


def alanine_fixture() -> AlanineTrajectory:
    """The tiny bundled trajectory (30 ps, 300 frames, float32 positions): tests and smoke runs, no OpenMM."""
    path = _fixture_path()
    arrays, settings = load_arrays(path)
    arrays["positions"] = arrays["positions"].astype(np.float64)
    return AlanineTrajectory.from_arrays(arrays, AlanineSettings(**settings), generated=False, path=path)
