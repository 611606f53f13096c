"""Start points for Markov chains from the draws of other chains.

A chain started from a draw of an equilibrated chain is stationary from its first step; :func:`stationary_starts`
picks such start points for many walkers (e.g. flow-proposal Metropolis started from latent-HMC draws), so the
walkers are unbiased even where the proposal misses part of the target.
"""

from __future__ import annotations

import torch

from ..errors import EventShapeError

__all__ = ["stationary_starts"]


def stationary_starts(draws: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` start points from MCMC draws ``(chains, draws, *event)``, shape ``(n, *event)``.

    First the last draw of every chain, then (when ``n`` exceeds the number of chains) draws further back, spaced
    over the second half of each chain, so that no two starts coincide while there are enough draws. Chains that
    start in equilibrium stay there, so flow-MH is unbiased from its first step even where the flow misses part of
    p (a walker that starts in such a hole holds its state, and the between-chain spread shows it).

    Example:
        >>> draws = torch.arange(12.0).reshape(2, 3, 2)      # 2 chains, 3 draws, event (2,)
        >>> stationary_starts(draws, 3).tolist()
        [[4.0, 5.0], [10.0, 11.0], [2.0, 3.0]]
    """
    if draws.dim() < 2 or draws.shape[0] < 1 or draws.shape[1] < 1:
        raise EventShapeError(f"draws must have shape (chains, draws, *event) with at least one draw, got "
                              f"{tuple(draws.shape)}")
    if int(n) < 1:
        raise ValueError(f"need n >= 1 start points, got {n}")
    C, D = draws.shape[:2]
    per = -(-n // C)  # draws per chain
    gap = max(1, D // (2 * per))
    idx = [max(0, D - 1 - i * gap) for i in range(per)]
    return draws[:, idx].transpose(0, 1).reshape(-1, *draws.shape[2:])[:n].clone()
