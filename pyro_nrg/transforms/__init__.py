"""Pyro ``TransformModule``s mapping latent ``z`` to physical ``x`` (no training, no I/O)."""

from .base import PairedTransformModule, Reshaped
from .coupling import (
    MLP,
    CouplingStack,
    MaskedAffineCoupling,
    TransformBlock,
    coupling_stack,
    half_partitions,
    masked_affine_coupling,
)
from .hierarchical import HierarchicalFlow, hierarchical_flow

__all__ = [
    "PairedTransformModule",
    "Reshaped",
    "MLP",
    "MaskedAffineCoupling",
    "CouplingStack",
    "TransformBlock",
    "masked_affine_coupling",
    "coupling_stack",
    "half_partitions",
    "HierarchicalFlow",
    "hierarchical_flow",
]
