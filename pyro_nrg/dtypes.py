"""The dtype and device a module computes in: the one helper every layer uses (energies, flows, trainers)."""

from __future__ import annotations

import itertools
from typing import Any

import torch

__all__ = ["module_dtype_device"]


def module_dtype_device(module: Any) -> tuple[torch.dtype, torch.device]:
    """The dtype and device a module computes in: those of its first floating-point parameter, else of its first
    floating-point buffer, else torch's default dtype on the CPU (also for objects that are not modules).

    Example:
        >>> module_dtype_device(torch.nn.Linear(2, 2).double())
        (torch.float64, device(type='cpu'))
    """
    params = module.parameters() if hasattr(module, "parameters") else ()
    buffers = module.buffers() if hasattr(module, "buffers") else ()
    for t in itertools.chain(params, buffers):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")
