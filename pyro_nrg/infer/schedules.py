r"""The learning-rate schedule of every trainer: linear warm-up times cosine decay.

.. math::
    \frac{\eta(t)}{\eta_\text{peak}} = \min\!\Big(1, \frac{t+1}{t_w}\Big)
    \Big[r + (1 - r)\,\tfrac12\big(1 + \cos(\pi \min(1, t / t_\text{total}))\big)\Big]

for step :math:`t = 0, 1, \dots` (the step whose update uses this rate), warm-up length :math:`t_w` (no warm-up if
0) and final ratio :math:`r`: the warm-up ramp multiplies a cosine that runs over the whole training, so the rate
reaches :math:`r\,\eta_\text{peak}` at :math:`t = t_\text{total}`. Used by
:class:`~pyro_nrg.infer.Distiller` and :func:`~pyro_nrg.infer.fit_variational` through
:class:`torch.optim.lr_scheduler.LambdaLR`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["warmup_cosine"]


def warmup_cosine(total_steps: int | Callable[[], int], warmup_steps: int = 0, final_lr_ratio: float = 0.0,
                  cosine: bool = True) -> Callable[[int], float]:
    """The factor :math:`\\eta(t)/\\eta_\\text{peak}` above, as a function of the step (for ``LambdaLR``).

    Args:
        total_steps: :math:`t_\\text{total}`, or a function returning it, read at every call (so a callback that
            moves the goal of a run moves the schedule too, as :class:`~pyro_nrg.infer.distillation.TimeBudget`
            does).
        warmup_steps: :math:`t_w` (0: none).
        final_lr_ratio: :math:`r`, the rate at the end relative to the peak.
        cosine: ``False`` keeps the warm-up only (a constant rate after it).

    Example:
        >>> f = warmup_cosine(100, warmup_steps=10, final_lr_ratio=0.1)
        >>> [round(f(t), 4) for t in (0, 9, 50, 100)]
        [0.1, 0.9821, 0.55, 0.1]
    """
    if int(warmup_steps) < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if not 0.0 <= final_lr_ratio <= 1.0:
        raise ValueError(f"final_lr_ratio must be in [0, 1], got {final_lr_ratio}")
    total = total_steps if callable(total_steps) else (lambda: int(total_steps))

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        if not cosine:
            return warm
        progress = min(1.0, step / max(1, total()))
        return warm * (final_lr_ratio + (1 - final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    return factor
