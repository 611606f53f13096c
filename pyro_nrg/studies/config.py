r"""Typed, validated configurations of the ``pyro-nrg`` studies, built from the command line before anything is
written.

One dataclass per study (:data:`STUDY_CONFIGS`); each field is one command-line option (``--<name>``, underscores
written as dashes; the field's ``metadata`` holds its help text, choices and aliases), so the parser, the
validation and the run folder's ``options.json`` share one list. :meth:`StudyConfig.validate` checks every option
(types, ranges, the lattice side, the device, the run folder) and raises a
:class:`~pyro_nrg.errors.StudyConfigError` whose message names the option and the fix; the CLI calls it before it
creates a folder, so a bad option leaves nothing behind.

Example:
    >>> cfg = IsingStudyConfig(L=4, steps=10)
    >>> cfg.validate().tag().startswith("L4-T2.269")
    True
    >>> IsingStudyConfig(batch_size=1).validate()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pyro_nrg.errors.StudyConfigError: --batch must be an integer >= 2, got 1: the variational free energy ...
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..energies import ISING_TC
from ..errors import StudyConfigError

__all__ = [
    "StudyConfig",
    "LatticeStudyConfig",
    "IsingStudyConfig",
    "Phi4StudyConfig",
    "ChainStudyConfig",
    "RingStudyConfig",
    "AlanineStudyConfig",
    "DigitsStudyConfig",
    "SweepStudyConfig",
    "STUDY_CONFIGS",
    "SEED_MAX",
    "option_flags",
]

SEED_MAX = 2**32 - 1
"""Largest seed: NumPy's generators (seeded by ``pyro.set_rng_seed``) take 32-bit seeds."""


def _opt(default: Any, help: str, group: str, *, flags: tuple[str, ...] = (), choices: tuple[Any, ...] = (),
         default_text: str | None = None) -> Any:
    """A dataclass field that is also a command-line option."""
    meta = {"help": help, "group": group, "flags": flags, "choices": choices, "default_text": default_text}
    return field(default=default, metadata=meta)


def option_flags(f: dataclasses.Field) -> tuple[str, ...]:
    """The command-line flags of a config field: ``--<name>`` (dashes for underscores) unless the field names its
    own (e.g. ``batch_size`` is ``--batch``), then any aliases."""
    return tuple(f.metadata.get("flags") or ()) or ("--" + f.name.replace("_", "-"),)


def _flag(name: str, cls: type) -> str:
    for f in fields(cls):
        if f.name == name:
            return option_flags(f)[0]
    return "--" + name.replace("_", "-")


@dataclass
class StudyConfig:
    """Options every study has: seeds, number type, device, threads and the run folder.

    ``out=None`` means the default folder ``runs/<study>-<tag>-<date-time>`` (:meth:`tag`).
    """

    study: ClassVar[str] = ""
    resumable: ClassVar[bool] = False

    seed: int = _opt(0, "random seed", "run")
    dtype: str = _opt("float32", "floating-point type of the flow and energy", "run", choices=("float32", "float64"))
    device: str = _opt("cpu", "torch device, e.g. cpu or cuda", "run")
    threads: int = _opt(1, "torch CPU threads (1: fastest for these small networks, and robust on shared machines)",
                        "run")
    out: str | None = _opt(None, "run folder", "run", default_text="runs/<study>-<settings>-<date-time>")
    resume: bool = _opt(False, "continue the run in --out from its last checkpoint, with the options and flow it "
                        "was made with (options given now override the run's own; lattice studies)", "run")
    quiet: bool = _opt(False, "no progress bars or log messages; only the summary", "run")

    # --- validation ------------------------------------------------------------------------------------------
    def _fail(self, name: str, value: Any, need: str, fix: str = "") -> None:
        msg = f"{_flag(name, type(self))} must be {need}, got {value!r}"
        raise StudyConfigError(msg + (f": {fix}" if fix else ""))

    def _int(self, name: str, lo: int, hi: int | None = None, fix: str = "", none_ok: bool = False) -> None:
        v = getattr(self, name)
        if v is None and none_ok:
            return
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        if not ok:
            need = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
            self._fail(name, v, need, fix)

    def _real(self, name: str, lo: float = -math.inf, *, positive: bool = False, fix: str = "") -> None:
        v = getattr(self, name)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= lo
        if ok and positive and not v > 0:
            ok = False
        if not ok:
            need = "a finite number > 0" if positive else (f"a finite number >= {lo:g}" if lo > -math.inf
                                                             else "a finite number")
            self._fail(name, v, need, fix)

    def _choice(self, name: str) -> None:
        f = next(f for f in fields(self) if f.name == name)
        if getattr(self, name) not in f.metadata["choices"]:
            self._fail(name, getattr(self, name), "one of " + ", ".join(map(str, f.metadata["choices"])))

    def validate(self) -> StudyConfig:
        """Check every option; raise :class:`~pyro_nrg.errors.StudyConfigError` naming the first bad one and the
        fix. Returns ``self``."""
        self._int("seed", 0, SEED_MAX, "use a seed in [0, 2**32 - 1]")
        self._choice("dtype")
        self._int("threads", 1, fix="use --threads 1 (the default) or more")
        self._check_device()
        self._check_out()
        for f in fields(self):
            if isinstance(f.default, bool) and not isinstance(getattr(self, f.name), bool):
                self._fail(f.name, getattr(self, f.name), "true or false")
            if f.metadata.get("choices") and f.name != "dtype":
                self._choice(f.name)
        self._check()
        return self

    def _check(self) -> None:
        """The study's own checks (overridden)."""

    def _check_device(self) -> None:
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError):
            self._fail("device", self.device, "a torch device", "use --device cpu, or cuda on a machine with a GPU")
        if dev.type == "cuda" and not torch.cuda.is_available():
            self._fail("device", self.device, "a device this machine has",
                       "CUDA is not available here (no GPU, or torch built without CUDA): use --device cpu")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            self._fail("device", self.device, f"one of cuda:0..cuda:{torch.cuda.device_count() - 1}")
        if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            self._fail("device", self.device, "a device this machine has", "MPS is not available: use --device cpu")
        if dev.type not in ("cpu", "cuda", "mps"):
            self._fail("device", self.device, "cpu, cuda or mps")

    def _check_out(self) -> None:
        if self.out is None:
            return
        if not isinstance(self.out, str | os.PathLike) or str(self.out).strip() == "":
            self._fail("out", self.out, "a folder name", "give a folder such as --out runs/a (an empty --out would "
                       "write into the current directory)")
        path = Path(self.out)
        if path.exists() and not path.is_dir():
            self._fail("out", str(path), "a folder", f"{path} is a file: choose another --out")
        for parent in path.absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    self._fail("out", str(path), "a folder path", f"{parent} is a file: choose another --out")
                break
        if self.resume and not path.is_dir():
            self._fail("out", str(path), "the folder of an existing run with --resume",
                       f"{path} does not exist: drop --resume to start a new run there")

    # --- conversions -----------------------------------------------------------------------------------------
    def tag(self) -> str:
        """The settings part of the default folder name (e.g. ``L8-T2.26919`` for Ising)."""
        return "run"

    def to_dict(self) -> dict[str, Any]:
        """``{"study": name, option: value...}`` (what ``options.json`` holds)."""
        return {"study": self.study, **dataclasses.asdict(self)}

    @classmethod
    def option_names(cls) -> list[str]:
        """The field names, in order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_options(cls, given: dict[str, Any], stored: dict[str, Any] | None = None) -> StudyConfig:
        """The config of ``given`` options over a stored run's ``options.json`` (``stored``, for ``--resume``: its
        folder, threads, quietness and resume flag are not taken) over the defaults. Not validated."""
        names = set(cls.option_names())
        unknown = sorted(set(given) - names)
        if unknown:
            raise StudyConfigError(
                f"option{'s' if len(unknown) > 1 else ''} {', '.join(_flag(k, cls) for k in unknown)} "
                f"do{'' if len(unknown) > 1 else 'es'} not apply to the {cls.study} study: see "
                f"pyro-nrg {cls.study} --help")
        values: dict[str, Any] = {}
        if stored:
            values.update({k: v for k, v in stored.items()
                           if k in names and k not in ("out", "resume", "threads", "quiet")})
        values.update(given)
        return cls(**values)


# ------------------------------------------------------------------------------------------------------------
# lattice studies
# ------------------------------------------------------------------------------------------------------------

_SAMPLE = "evaluation and sampling"


@dataclass
class LatticeStudyConfig(StudyConfig):
    """Options of the NeuralRG lattice studies (``ising``, ``phi4``): lattice and flow, training, evaluation."""

    resumable: ClassVar[bool] = True

    L: int = _opt(8, "lattice side, a power of 2", "lattice and flow")
    dim: int = _opt(2, "lattice dimension", "lattice and flow", choices=(1, 2))
    depth: int | None = _opt(None, "RG levels of the flow", "lattice and flow", default_text="all, log2 L")
    couplings: int = _opt(4, "couplings per block bijector", "lattice and flow")
    coupling: str = _opt("affine", "coupling layers: 'affine' (RealNVP) or 'tanh' (smooth, bimodal conditionals, "
                         "slower per step)", "lattice and flow", choices=("affine", "tanh"))
    hidden: int = _opt(32, "hidden width of the coupling networks", "lattice and flow")
    head: str = _opt("tanh", "element-wise odd map on every site after the hierarchy: lower F_q for the same "
                     "training; 'tanh' is smooth, 'spline' C1 (rougher latent potential), 'none' the paper's flow",
                     "lattice and flow", choices=("none", "spline", "tanh"))
    no_z2: bool = _opt(False, "do not symmetrize the flow under x -> -x", "lattice and flow")
    odd: bool = _opt(False, "odd flow, g(-z) = -g(z): Z2-symmetric by construction and continuous across the two "
                     "magnetisation sectors, so it misses less of the disordered configurations than the Z2 mixture "
                     "of a one-sector flow (benchmarks/flow_mh_coverage.py), at a higher F_q for the same training "
                     "(implies --no-z2)", "lattice and flow")
    steps: int = _opt(1500, "training steps", "training")
    batch_size: int = _opt(256, "samples per training step", "training", flags=("--batch", "--batch-size"))
    lr: float = _opt(3e-3, "peak learning rate of the warm-up + cosine schedule", "training")
    compile: bool = _opt(False, "fast path: the flow's layers as fixed reshapes and kernels compiled once by "
                         "torch.compile (same numbers; compiling costs seconds to a minute, so for runs of minutes; "
                         "eager fallback with a warning where it cannot compile)", "training")
    translations: int = _opt(1, "train the mixture of the flow over lattice shifts by 0..t-1 sites per axis "
                             "(LatticeSymmetrized: never a higher F_q, t**dim times the inverse passes; 1 = off)",
                             "training")
    check_every: int | None = _opt(None, "steps between importance-sampled free-energy checks", "training",
                                   default_text="steps/10")
    checkpoint_every: int = _opt(100, "steps between checkpoints (and at the end)", "training")
    eval_samples: int = _opt(16384, "flow samples for the final free-energy estimate", _SAMPLE)
    ais_particles: int = _opt(1024, "annealed-importance-sampling particles from the trained flow (0 skips it)",
                              _SAMPLE)
    ais_temperatures: int = _opt(32, "AIS temperatures, one HMC transition of 5 leapfrog steps each", _SAMPLE)
    mh_walkers: int = _opt(64, "flow-MH walkers, started from the latent HMC draws", _SAMPLE,
                           flags=("--mh-walkers", "--walkers"))
    mh_steps: int = _opt(1000, "flow-MH steps per walker", _SAMPLE)
    hmc_walkers: int = _opt(32, "latent HMC walkers", _SAMPLE)
    hmc_samples: int = _opt(150, "latent HMC draws per walker", _SAMPLE)
    hmc_metric: str = _opt("dense", "latent HMC metric, adapted during warm-up (unit is the paper's)", _SAMPLE,
                           choices=("unit", "diag", "dense"))
    nuts_chains: int = _opt(2, "physical NUTS chains (0 skips it)", _SAMPLE)
    nuts_samples: int = _opt(200, "physical NUTS draws per chain", _SAMPLE)
    save_configurations: bool = _opt(False, "store the sampled configurations in the netCDF files (large)", _SAMPLE)

    def _check(self) -> None:
        self._int("L", 2, fix="use a power of 2 such as --L 8 or --L 16")
        if self.L & (self.L - 1):
            lo = 1 << (self.L.bit_length() - 1)
            self._fail("L", self.L, "a power of 2 for the hierarchical flow", f"use --L {lo} or --L {2 * lo}")
        levels = self.L.bit_length() - 1
        self._int("depth", 1, levels, f"the flow of L={self.L} has at most log2 L = {levels} RG levels",
                  none_ok=True)
        self._int("couplings", 1, fix="each block bijector needs at least one coupling layer (default 4)")
        self._int("hidden", 1, fix="the coupling networks need a hidden width of at least 1 (default 32)")
        self._int("steps", 1, fix="train at least one step (default 1500)")
        self._int("batch_size", 2, fix="the variational free energy and its error need several samples per step")
        self._real("lr", positive=True, fix="the peak learning rate is a positive number such as 3e-3")
        self._int("translations", 1, self.L, "1 is off; 2 (shifts by 0/1 site) gives most of the gain")
        self._int("check_every", 1, fix="give a number of steps, or leave it out for steps/10", none_ok=True)
        self._int("checkpoint_every", 1, fix="give a number of steps (default 100)")
        self._int("eval_samples", 16, fix="the free-energy estimate needs samples (default 16384)")
        self._int("ais_particles", 0, fix="0 skips annealed importance sampling")
        self._int("ais_temperatures", 2, fix="annealing needs at least two temperatures (default 32)")
        self._int("mh_walkers", 1, fix="flow-MH needs at least one walker (default 64)")
        self._int("mh_steps", 4, fix="the ESS of flow-MH needs several steps per walker (default 1000)")
        self._int("hmc_walkers", 1, fix="latent HMC needs at least one walker (default 32)")
        self._int("hmc_samples", 4, fix="the ESS of latent HMC needs several draws per walker (default 150)")
        self._int("nuts_chains", 0, fix="0 skips physical NUTS")
        self._int("nuts_samples", 4, fix="the ESS of NUTS needs several draws per chain (default 200)")

    def check_every_steps(self) -> int:
        """Steps between the importance-sampled checks (``check_every``, default a tenth of the steps)."""
        return self.check_every or max(1, self.steps // 10)


@dataclass
class IsingStudyConfig(LatticeStudyConfig):
    """The ``ising`` study: the 2D (or 1D) Ising model through its Gaussian relaxation."""

    study: ClassVar[str] = "ising"

    T: float = _opt(ISING_TC, "temperature", "model", default_text="T_c = 2/ln(1+sqrt 2)")
    wolff_updates: int = _opt(20000, "Wolff cluster updates of the discrete-Ising reference for <m^2>", "model")
    exact_draws: int = _opt(4000, "exact draws of the relaxed model (Wolff spins -> x ~ N(Ks, K)) for the coverage "
                            "check and KL(p||q) (0 checks coverage on the latent-HMC draws instead)", "model")

    def _check(self) -> None:
        self._real("T", positive=True, fix=f"give a temperature such as the critical one, --T {ISING_TC:.6f}")
        self._int("wolff_updates", 0, fix="0 skips the Wolff reference")
        self._int("exact_draws", 0, fix="0 checks coverage on the latent-HMC draws instead")
        super()._check()

    def tag(self) -> str:
        return f"L{self.L}-T{self.T:.6g}"


@dataclass
class Phi4StudyConfig(LatticeStudyConfig):
    """The ``phi4`` study: lattice φ⁴ in the hopping convention (exact F at ``lam=0``)."""

    study: ClassVar[str] = "phi4"

    kappa: float = _opt(0.2, "hopping parameter kappa", "model")
    lam: float = _opt(0.02, "quartic coupling lambda >= 0", "model")

    def _check(self) -> None:
        self._real("kappa", 0.0, fix="the hopping parameter is >= 0 (default 0.2)")
        self._real("lam", 0.0, fix="a negative quartic coupling is not normalizable: use --lam 0 or more")
        if self.lam == 0 and self.dim in (1, 2) and self.kappa >= 1 / (2 * self.dim):
            self._fail("kappa", self.kappa, f"< 1/(2 dim) = {1 / (2 * self.dim):g} for the free field (--lam 0)",
                       "the Gaussian action is not positive definite there: use a smaller --kappa, or --lam > 0")
        super()._check()

    def tag(self) -> str:
        return f"L{self.L}-k{self.kappa:g}-l{self.lam:g}"


# ------------------------------------------------------------------------------------------------------------
# neural canonical transformation studies
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _CanonicalBase(StudyConfig):
    """Training options shared by ``chain`` and ``ring``."""

    eval_samples: int = _opt(20000, "samples for the final free-energy estimate", "training")

    def _check_training(self, default_T: float) -> None:
        self._real("T", positive=True, fix=f"give a positive temperature such as --T {default_T:g} (the default)")
        self._int("steps", 1, fix="train at least one step (default 1500)")
        self._int("batch_size", 2, fix="the variational free energy and its error need several samples per step")
        self._real("lr", positive=True, fix="the peak learning rate is a positive number")
        self._int("eval_samples", 16, fix="the free-energy estimate needs samples (default 20000)")


@dataclass
class ChainStudyConfig(_CanonicalBase):
    """The ``chain`` study: harmonic chain with fixed ends, learned spectrum and normal modes against exact."""

    study: ClassVar[str] = "chain"

    dtype: str = _opt("float64", "floating-point type of the flow and energy", "run", choices=("float32", "float64"))
    T: float = _opt(1.0, "temperature", "system")
    n: int = _opt(16, "particles", "system")
    kappa: float = _opt(1.0, "spring constant", "system")
    steps: int = _opt(1500, "SVI steps", "training")
    batch_size: int = _opt(256, "samples per step", "training", flags=("--batch", "--batch-size"))
    lr: float = _opt(1e-2, "peak learning rate", "training")

    def _check(self) -> None:
        self._check_training(1.0)
        self._int("n", 2, fix="a chain needs at least two particles (default 16)")
        self._real("kappa", positive=True, fix="the spring constant is positive (default 1)")

    def tag(self) -> str:
        return f"n{self.n}-T{self.T:g}"


@dataclass
class RingStudyConfig(_CanonicalBase):
    """The ``ring`` study: H = (|q|-2)²/0.32 + |p|²/2, free energy and radius/angle latents."""

    study: ClassVar[str] = "ring"

    T: float = _opt(1.0, "temperature", "system")
    blocks: int = _opt(2, "nonlinear symplectic blocks", "system")
    hidden: int = _opt(64, "hidden width of the RealNVP networks", "system")
    steps: int = _opt(1500, "SVI steps", "training")
    batch_size: int = _opt(512, "samples per step", "training", flags=("--batch", "--batch-size"))
    lr: float = _opt(5e-3, "peak learning rate", "training")

    def _check(self) -> None:
        self._check_training(1.0)
        self._int("blocks", 1, fix="the polar flow needs at least one nonlinear block (default 2)")
        self._int("hidden", 1, fix="the networks need a hidden width of at least 1 (default 64)")

    def tag(self) -> str:
        return f"T{self.T:g}"


# ------------------------------------------------------------------------------------------------------------
# density-estimation demos
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _DemoBase(StudyConfig):
    blocks: int = _opt(2, "nonlinear symplectic blocks", "data and model")
    lr: float = _opt(1e-3, "learning rate", "training")

    def _check_training(self) -> None:
        self._int("blocks", 1, fix="the flow needs at least one nonlinear block (default 2)")
        self._int("hidden", 1, fix="the networks need a hidden width of at least 1")
        self._int("epochs", 1, fix="train at least one epoch")
        self._int("batch_size", 2, fix="minibatches need at least two samples")
        self._real("lr", positive=True, fix="the learning rate is a positive number such as 1e-3")


@dataclass
class AlanineStudyConfig(_DemoBase):
    """The ``alanine`` study: slow modes of alanine dipeptide MD against the backbone dihedrals."""

    study: ClassVar[str] = "alanine"

    data: str = _opt("vacuum", "data set: 'vacuum' or 'implicit' ship with the package (3 x 250 ns and 3 x 2 ns at "
                     "300 K, no OpenMM needed); 'md' runs --duration-ns of new vacuum MD with OpenMM", "data and model",
                     choices=("vacuum", "implicit", "md"))
    duration_ns: float = _opt(30.0, "MD trajectory length in ns (with --data md)", "data and model")
    temperature: float = _opt(300.0, "MD temperature in K (with --data md; the shipped sets are at 300 K)",
                              "data and model")
    fixture: bool = _opt(False, "use the bundled 300-frame trajectory instead of running OpenMM (a smoke test)",
                         "data and model")
    hidden: int = _opt(64, "hidden width", "data and model")
    epochs: int = _opt(40, "maximum epochs, early stopping", "training")
    batch_size: int = _opt(256, "minibatch size", "training", flags=("--batch", "--batch-size"))

    def _check(self) -> None:
        self._choice("data")
        self._real("duration_ns", positive=True, fix="give the MD length in ns, e.g. --duration-ns 30")
        self._real("temperature", positive=True, fix="give the MD temperature in K, e.g. --temperature 300")
        if self.data != "md" and not self.fixture and self.temperature != 300.0:
            self._fail("temperature", self.temperature, "300 K for the shipped data sets",
                       "add --data md to run new MD at another temperature")
        self._check_training()

    def tag(self) -> str:
        if self.fixture:
            return "fixture"
        return f"md{self.duration_ns:g}ns" if self.data == "md" else self.data


@dataclass
class DigitsStudyConfig(_DemoBase):
    """The ``digits`` study: 8×8 digits, test bits/dim and compression onto the slowest modes against PCA."""

    study: ClassVar[str] = "digits"

    hidden: int = _opt(128, "hidden width", "data and model")
    epochs: int = _opt(200, "maximum epochs, early stopping", "training")
    batch_size: int = _opt(128, "minibatch size", "training", flags=("--batch", "--batch-size"))

    def _check(self) -> None:
        self._check_training()

    def tag(self) -> str:
        return f"b{self.blocks}"


@dataclass
class SweepStudyConfig(StudyConfig):
    """The ``sweep`` study: one temperature-conditioned NeuralRG flow over a range of T for the 2D Ising relaxation,
    its thermodynamic curves against the exact ones, and the posterior over T of a few exact configurations."""

    study: ClassVar[str] = "sweep"

    L: int = _opt(8, "lattice side, a power of 2", "lattice and flow")
    t_min: float = _opt(1.8, "lowest temperature of the range", "lattice and flow")
    t_max: float = _opt(3.5, "highest temperature of the range", "lattice and flow")
    conditioning: str = _opt("film", "how T enters the coupling networks", "lattice and flow",
                             choices=("film", "concat"))
    hidden: int = _opt(32, "hidden width of the coupling networks", "lattice and flow")
    couplings: int = _opt(4, "couplings per block bijector", "lattice and flow")
    steps: int = _opt(2000, "training steps", "training")
    batch_size: int = _opt(256, "samples per training step (split among the temperatures)", "training",
                           flags=("--batch", "--batch-size"))
    lr: float = _opt(3e-3, "peak learning rate of the warm-up + cosine schedule", "training")
    train_temperatures: int = _opt(8, "temperatures per training step (stratified in 1/T)", "training")
    temperatures: int = _opt(25, "temperatures of the curves (equally spaced in 1/T)", _SAMPLE)
    eval_samples: int = _opt(8192, "flow samples per temperature", _SAMPLE)
    posterior_temperature: float = _opt(2.5, "temperature of the observed configurations of the posterior check",
                                        _SAMPLE, flags=("--posterior-temperature", "--posterior-T"))
    observations: int = _opt(5, "observed configurations of the posterior check (0 skips it)", _SAMPLE)
    nuts_chains: int = _opt(4, "NUTS chains on T", _SAMPLE)
    nuts_samples: int = _opt(300, "NUTS draws per chain", _SAMPLE)
    nuts_warmup: int = _opt(200, "NUTS warm-up steps per chain", _SAMPLE)

    def _check(self) -> None:
        self._int("L", 4, fix="use a power of 2 such as --L 8 or --L 16")
        if self.L & (self.L - 1):
            lo = 1 << (self.L.bit_length() - 1)
            self._fail("L", self.L, "a power of 2 for the hierarchical flow", f"use --L {lo} or --L {2 * lo}")
        self._real("t_min", positive=True, fix="give a temperature such as --t-min 1.8")
        self._real("t_max", positive=True, fix="give a temperature such as --t-max 3.5")
        if not self.t_max > self.t_min:
            self._fail("t_max", self.t_max, f"above --t-min ({self.t_min:g})", "give a range such as 1.8 to 3.5")
        self._int("hidden", 1, fix="default 32")
        self._int("couplings", 1, fix="default 4")
        self._int("steps", 1, fix="train at least one step (default 2000)")
        self._int("batch_size", 2, fix="default 256")
        self._real("lr", positive=True, fix="a positive number such as 3e-3")
        self._int("train_temperatures", 1, self.batch_size, "at most one temperature per sample of a batch")
        self._int("temperatures", 5, fix="the curves and their C(T) peak need several temperatures (default 25)")
        self._int("eval_samples", 16, fix="default 8192")
        self._real("posterior_temperature", positive=True, fix="give a temperature inside the range")
        if self.observations and not self.t_min <= self.posterior_temperature <= self.t_max:
            self._fail("posterior_temperature", self.posterior_temperature, f"inside [{self.t_min:g}, {self.t_max:g}]",
                       "the flow is trained, and the prior is uniform, on that range")
        self._int("observations", 0, fix="0 skips the posterior check")
        self._int("nuts_chains", 1, fix="default 4 (R-hat needs several)")
        self._int("nuts_samples", 4, fix="default 300")
        self._int("nuts_warmup", 1, fix="default 200")

    def tag(self) -> str:
        return f"L{self.L}-T{self.t_min:g}-{self.t_max:g}"


STUDY_CONFIGS: dict[str, type[StudyConfig]] = {
    c.study: c for c in (IsingStudyConfig, Phi4StudyConfig, ChainStudyConfig, RingStudyConfig, AlanineStudyConfig,
                         DigitsStudyConfig, SweepStudyConfig)
}
"""Study name → its config class."""
