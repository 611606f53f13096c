r"""The fast evaluation path: a transform's hot function compiled once by ``torch.compile``, with an eager fallback.

A transform that supports the fast path (:class:`~pyro_nrg.transforms.HierarchicalFlow`,
:class:`~pyro_nrg.transforms.OddTanhSum`) has a boolean attribute ``fast`` (default ``False``: the eager path).
With ``fast = True`` its value and log-determinant come from a function written for the compiler (fixed reshapes
instead of gathers, no per-call Python bookkeeping) that :func:`fast_call` compiles with ``torch.compile``
(inductor: C++ on a CPU, Triton on a GPU) at its first call and keeps, per module, for every later call. The
numbers are those of the eager path within floating-point tolerance (the tests check forward, inverse, log-det and
gradients in float32 and float64).

If compiling is impossible (no ``torch.compile``, no C++ compiler for a CPU tensor, no Triton for a CUDA tensor)
or fails, the same function runs eagerly and a :class:`FastPathWarning` says why, once per module and function.

Switch a whole flow (every submodule that has the attribute) with :func:`set_fast_path`:

    >>> from pyro_nrg.flows import neural_rg
    >>> flow = neural_rg(L=4)
    >>> set_fast_path(flow, True)
    2

Compiling costs seconds to a minute per function and dtype (``docs/physics.md``, "Speed"): worth it for a training
run of minutes, not for a test of a few steps, hence the eager default. Inductor keeps its generated code on disk
(``TORCHINDUCTOR_CACHE_DIR``), so a second process compiles the same flow faster.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import types
import warnings
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

__all__ = ["FastPathWarning", "compile_unavailable_reason", "fast_call", "kernel_call", "set_fast_path",
           "fast_path_modules"]

logger = logging.getLogger(__name__)


class FastPathWarning(UserWarning):
    """The fast path could not be compiled and runs eagerly (same numbers, eager speed)."""


# compiled functions per module, outside the module itself so that deepcopy/pickle of a flow never meet them
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[str, _Compiled]] = weakref.WeakKeyDictionary()


def compile_unavailable_reason(device_type: str) -> str | None:
    """Why ``torch.compile`` cannot run for tensors on ``device_type`` here (``None``: it can)."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (needs torch >= 2.0)"
    if device_type == "cpu":
        import os

        if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
            return "no C++ compiler (g++, c++ or clang++) on PATH for inductor's CPU code: install one, or set CXX"
        return None
    if device_type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed (inductor's GPU code needs it): pip install triton"
        return None
    return f"no inductor backend is known to work for {device_type!r} tensors here"


class _Compiled:
    """One function, compiled at its first call; after a failure it runs eagerly (and says so once)."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn, self.name = fn, name
        self.compiled: Callable[..., Any] | None = None
        self.failed: str | None = None

    def _fall_back(self, why: str) -> None:
        self.failed = why
        warnings.warn(f"fast path of {self.name} runs eagerly (same numbers, eager speed): {why}", FastPathWarning,
                      stacklevel=4)

    def __call__(self, *args: torch.Tensor) -> Any:
        if self.failed is None and self.compiled is None:
            device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
            reason = compile_unavailable_reason(device)
            if reason is not None:
                self._fall_back(reason)
            else:
                self.compiled = torch.compile(self.fn, dynamic=True)
        if self.failed is not None or self.compiled is None:
            return self.fn(*args)
        try:
            return self.compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager function is the reference
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self._fall_back(f"torch.compile failed ({type(exc).__name__}: {first[:200]})")
            return self.fn(*args)


def fast_call(owner: nn.Module, key: str, fn: Callable[..., Any], *args: torch.Tensor) -> Any:
    """Call ``fn(*args)`` through its compiled version, made at the first call for ``(owner, key)`` and kept.

    ``fn`` must be a pure tensor function (it may read ``owner``'s parameters and buffers): the compiler specialises
    on dtype, device, grad mode and (after the first change, symbolically) on shapes, so one ``key`` serves them
    all.
    """
    per_module = _CACHE.setdefault(owner, {})
    entry = per_module.get(key)
    if entry is None:
        entry = per_module[key] = _Compiled(fn, f"{type(owner).__name__}.{key}")
    return entry(*args)


_KERNELS: dict[Hashable, _Compiled] = {}


def kernel_call(key: Hashable, make: Callable[[], Callable[..., Any]], *args: torch.Tensor) -> Any:
    """Call the pure tensor function ``make()`` (built once per ``key``, e.g. a layer structure) compiled, on ``args``.

    Each key gets a function with its own code object, so the compiler's cache and guards are per key: a kernel
    compiled for one structure is never reused for another, and a call checks only its tensor arguments (no module
    attributes), which keeps the per-call cost small. The structure must be fully described by ``key``.
    """
    entry = _KERNELS.get(key)
    if entry is None:
        fn = make()
        fresh = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__,
                                   fn.__closure__)
        entry = _KERNELS[key] = _Compiled(fresh, f"kernel {fn.__qualname__}")
    # a view's base would enter the guards (its strides differ from call to call): pass views as fresh tensors
    return entry(*(a.clone() if isinstance(a, torch.Tensor) and a._base is not None else a for a in args))


def fast_path_modules(module: nn.Module) -> list[nn.Module]:
    """The submodules of ``module`` (itself included) that have a fast path (a boolean ``fast`` attribute)."""
    return [m for m in module.modules() if isinstance(getattr(m, "fast", None), bool)]


def set_fast_path(module: nn.Module, enabled: bool = True) -> int:
    """Switch the fast path of every submodule of ``module`` that has one; returns how many were switched."""
    mods = fast_path_modules(module)
    for m in mods:
        m.fast = bool(enabled)
    return len(mods)
