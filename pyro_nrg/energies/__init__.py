"""Unnormalized potentials ``E(x)`` of shape ``batch_shape``, with exact references where they exist."""

from .base import Energy, check_temperature

__all__ = ["Energy", "check_temperature"]
