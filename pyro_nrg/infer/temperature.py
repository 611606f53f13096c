r"""Distillation over a temperature range: one conditioned flow :math:`q(x \mid T)` for every :math:`T` in
:math:`[T_{\min}, T_{\max}]`.

Every step splits the batch into ``n_temperatures`` groups, one temperature each, and minimises the reverse KL
summed over them,

.. math:: \mathcal L = \frac1G \sum_{g=1}^{G} \mathbb E_{x\sim q(\cdot\mid T_g)}
          \big[\beta_g E_{T_g}(x) + \ln q(x \mid T_g)\big]
          = \frac1G \sum_g \big[\mathrm{KL}(q_{T_g}\,\|\,p_{T_g}) - \ln Z(T_g)\big],

whose gradient is that of :math:`\sum_g \mathrm{KL}(q_{T_g}\|p_{T_g})` (each KL in nats, so no temperature
dominates). ``sampling="stratified"`` draws :math:`\beta_g` uniformly in the :math:`g`-th of :math:`G` equal
slices of :math:`[\beta_{\min}, \beta_{\max}]` at every step (every temperature of the range is trained, none is
left out of any step); ``"grid"`` uses the same :math:`G` inverse temperatures, equally spaced and with both ends,
every step. The draws come from torch's RNG, which checkpoints save, so a resumed run continues bit-exactly.

:class:`ConditionalDistiller` is a :class:`~pyro_nrg.infer.Distiller` (same optimiser, schedule, clipping,
divergence checks, checkpoints and resume, path gradients, the :math:`Z_2` mixture); its history's ``f_q`` is the
batch mean of :math:`T_i(\beta_i E(x_i) + \ln q(x_i\mid T_i))`, the mean of the groups' variational free energies.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..distributions import ConditionalFlowDistribution, FlowDistribution, Z2Symmetrized
from ..energies.base import Energy
from ..errors import InverseNotConvergedError, NonFiniteError, TemperatureError
from ..transforms.conditional import ConditionalHierarchicalFlow
from .distillation import DistillConfig, Distiller, DistillResult, energy_config, run_distiller
from .estimators import FreeEnergyEstimate, estimate_free_energy, sample_log_weights

__all__ = ["TemperatureRange", "ConditionalDistiller", "distill_temperatures", "estimate_at"]

EnergyAt = Callable[[float], Energy]


@dataclass
class TemperatureRange:
    """Which temperatures a step of :class:`ConditionalDistiller` trains (module docstring).

    Attributes:
        t_min: lowest temperature.
        t_max: highest temperature.
        n_temperatures: groups (temperatures) per step; the batch is split evenly among them.
        sampling: ``"stratified"`` (one uniform draw of :math:`\\beta` per slice, every step) or ``"grid"``.
    """

    t_min: float = 1.8
    t_max: float = 3.5
    n_temperatures: int = 8
    sampling: str = "stratified"

    def __post_init__(self) -> None:
        if not (0 < float(self.t_min) < float(self.t_max) and math.isfinite(float(self.t_max))):
            raise TemperatureError(f"need 0 < t_min < t_max, got {self.t_min!r}, {self.t_max!r}: e.g. 1.8 and 3.5")
        if int(self.n_temperatures) < 1:
            raise ValueError(f"n_temperatures must be >= 1, got {self.n_temperatures}: e.g. 8")
        if self.sampling not in ("stratified", "grid"):
            raise ValueError(f"sampling must be 'stratified' or 'grid', got {self.sampling!r}")

    def grid(self, n: int | None = None) -> list[float]:
        """``n`` (default ``n_temperatures``) temperatures equally spaced in :math:`\\beta`, both ends included."""
        n = int(n or self.n_temperatures)
        b_lo, b_hi = 1.0 / self.t_max, 1.0 / self.t_min
        if n == 1:
            return [2.0 / (b_lo + b_hi)]
        return [1.0 / (b_hi - k * (b_hi - b_lo) / (n - 1)) for k in range(n)]

    def draw(self) -> list[float]:
        """This step's temperatures (stratified draws from torch's RNG, or the grid), coldest first."""
        if self.sampling == "grid":
            return self.grid()
        G = int(self.n_temperatures)
        b_lo, b_hi = 1.0 / self.t_max, 1.0 / self.t_min
        u = torch.rand(G, dtype=torch.float64)
        return [1.0 / (b_hi - (g + float(u[g])) * (b_hi - b_lo) / G) for g in range(G)]


class ConditionalDistiller(Distiller):
    """A :class:`~pyro_nrg.infer.Distiller` that trains a temperature-conditioned flow over a temperature range.

    Args:
        energy_at: ``energy_at(T)`` builds the target energy at temperature ``T`` (e.g.
            ``functools.partial(IsingRelaxed, 8)``); called for every group of every step (cheap for the Ising
            relaxation).
        flow: a :class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`.
        config: :class:`~pyro_nrg.infer.DistillConfig` (``batch_size`` is split among the temperatures).
        temperatures: :class:`TemperatureRange` (default: the flow's range, 8 stratified temperatures per step).
        checkpoint_dir: as for :class:`~pyro_nrg.infer.Distiller`; checkpoints also record the range.

    Example:
        >>> import functools
        >>> from pyro_nrg.energies import IsingRelaxed
        >>> from pyro_nrg.flows import conditional_neural_rg
        >>> flow = conditional_neural_rg(L=4, hidden=8, t_min=2.0, t_max=3.0)
        >>> d = ConditionalDistiller(functools.partial(IsingRelaxed, 4), flow, DistillConfig(steps=5, batch_size=32))
        >>> len(d.run(progress=False)["f_q"])
        5
    """

    def __init__(
        self,
        energy_at: EnergyAt,
        flow: ConditionalHierarchicalFlow,
        config: DistillConfig | None = None,
        temperatures: TemperatureRange | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(flow, ConditionalHierarchicalFlow):
            raise TypeError(f"ConditionalDistiller trains a ConditionalHierarchicalFlow, got {type(flow).__name__}: "
                            "build one with pyro_nrg.flows.conditional_neural_rg(...), or use Distiller for one T")
        self.temperatures = temperatures or TemperatureRange(flow.t_min, flow.t_max)
        self.energy_at = energy_at
        self.reference_temperature = 2.0 / (1.0 / self.temperatures.t_min + 1.0 / self.temperatures.t_max)
        conditioned = flow.condition(self.reference_temperature)
        super().__init__(energy_at(self.reference_temperature), conditioned, config, checkpoint_dir, distributed=False)
        self.flow = flow  # checkpoints hold the conditional flow's state
        self._conditioned = conditioned
        self._caching = [*(m for m in flow.modules() if hasattr(m, "clear_cache")), conditioned]
        self.last_temperatures: list[float] = []
        """The temperatures of the last step's groups."""
        self.last_group_fq: list[float] = []
        """The variational free energy of each group of the last step (same order)."""

    def run_config(self) -> dict[str, Any]:
        """As :meth:`Distiller.run_config`, with the temperature range under ``energy``."""
        cfg = super().run_config()
        cfg["energy"] = {**energy_config(self.energy), "temperatures": asdict(self.temperatures)}
        return cfg

    def distribution(self) -> ConditionalFlowDistribution:
        """The trained :math:`q(x \\mid T)` (with the :math:`Z_2` mixture if the run used it)."""
        return ConditionalFlowDistribution(self.flow, z2_symmetric=self.config.z2_symmetric)

    def _one_loss(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        temps = self.temperatures.draw()
        G, B = len(temps), int(self.config.batch_size)
        sizes = [B // G + (1 if g < B % G else 0) for g in range(G)]
        sizes = [s for s in sizes if s > 0]
        temps = temps[: len(sizes)]
        dtype = next(self.flow.parameters()).dtype
        T = torch.repeat_interleave(torch.tensor(temps, dtype=dtype), torch.tensor(sizes))
        self._conditioned.temperature = T
        q: Any = FlowDistribution(self._conditioned, path_gradient=self.config.path_gradient)
        if self.config.z2_symmetric:
            q = Z2Symmetrized(q)
        try:
            x = q.rsample((B,))
            log_q = q.log_prob(x)
            action = torch.cat([self.energy_at(t).to(dtype).action(xg) for t, xg in zip(temps, x.split(sizes),
                                                                                         strict=True)])
        except (NonFiniteError, InverseNotConvergedError) as exc:
            if self.step == 0:
                raise
            self._diverged(f"the flow's samples are no longer usable ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0]})")
        lw = -(action + log_q)
        loss = -lw.mean()
        with torch.no_grad():
            self.last_temperatures = temps
            self.last_group_fq = [-t * float(g.mean()) for t, g in zip(temps, lw.detach().split(sizes), strict=True)]
            scaled = (lw.detach() * T / self.reference_temperature).to(torch.float64)
        return loss, scaled

    @torch.no_grad()
    def estimate(
        self, n: int = 8192, batch_size: int = 4096, float64: bool = True, translations: int | None = None,
        point_group: bool | None = None, temperature: float | None = None,
    ) -> FreeEnergyEstimate:
        """F_q, IS ln Z, ESS and k-hat at ``temperature`` (default: the middle of the range in :math:`\\beta`) from
        ``n`` fresh samples; see :func:`estimate_at`. Lattice mixtures are not offered for a conditioned flow."""
        if (translations or 1) > 1 or point_group:
            raise ValueError("lattice-symmetrised estimates are not offered for a conditioned flow: leave "
                             "translations and point_group unset")
        T = self.reference_temperature if temperature is None else float(temperature)
        self._clear_caches()
        return estimate_at(self.distribution(), self.energy_at(T), n, batch_size, float64)


@torch.no_grad()
def estimate_at(
    q: ConditionalFlowDistribution, energy: Energy, n: int = 8192, batch_size: int = 4096, float64: bool = True,
    seed: int | None = None,
) -> FreeEnergyEstimate:
    """Variational and importance-sampled free energy of ``q`` at the temperature of ``energy`` (any ``T``).

    Draws ``n`` samples of ``q.distribution(T)`` (a float64 copy of the flow if ``float64``; with ``seed`` from a
    forked, seeded RNG, so that several temperatures can share their random numbers) and returns
    :func:`~pyro_nrg.infer.estimate_free_energy` of the log-weights, against the exact ln Z when the energy has one.
    """
    T = float(energy.temperature)
    if float64:
        q = ConditionalFlowDistribution(copy.deepcopy(q.flow).double(), q.z2_symmetric, q.latent_scale)
        energy = copy.deepcopy(energy).double()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        _, lw = sample_log_weights(energy, q.distribution(T), n, batch_size)
    exact = None
    try:
        exact = float(energy.log_z())
    except NotImplementedError:
        pass
    return estimate_free_energy(lw, T, exact)


def distill_temperatures(
    energy_at: EnergyAt,
    flow: ConditionalHierarchicalFlow,
    temperatures: TemperatureRange | None = None,
    config: DistillConfig | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[Distiller, dict[str, float]], bool | None]] = (),
    progress: bool | None = None,
    **config_overrides: Any,
) -> DistillResult:
    """Train a temperature-conditioned flow over a range, as :func:`~pyro_nrg.infer.distill` trains one at one T.

    Args:
        energy_at: the energy at any ``T`` (e.g. ``functools.partial(IsingRelaxed, 8)``).
        flow: a :class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`.
        temperatures: :class:`TemperatureRange` (default: the flow's range, 8 stratified temperatures per step).
        config: a full :class:`~pyro_nrg.infer.DistillConfig` (then ``config_overrides`` are ignored).
        checkpoint_dir: folder for checkpoints and ``metrics.jsonl``.
        resume: continue from ``checkpoint_dir/checkpoint.pt`` if it exists.
        callbacks: ``cb(distiller, record) -> bool | None``; ``True`` stops training.
        progress: tqdm bar (default: only when stderr is a terminal).
        **config_overrides: :class:`~pyro_nrg.infer.DistillConfig` fields (``steps``, ``batch_size``, ``lr``...).

    Returns:
        :class:`~pyro_nrg.infer.DistillResult`; ``result.distiller.distribution()`` is the trained
        :class:`~pyro_nrg.distributions.ConditionalFlowDistribution`.

    Raises:
        TrainingDivergedError, ConfigMismatchError, CheckpointError: as :func:`~pyro_nrg.infer.distill`.
    """
    import pyro

    cfg = config or DistillConfig(**config_overrides)
    if cfg.seed is not None:
        pyro.set_rng_seed(cfg.seed)
    runner = ConditionalDistiller(energy_at, flow, cfg, temperatures, checkpoint_dir)
    return run_distiller(runner, resume, callbacks, progress)
