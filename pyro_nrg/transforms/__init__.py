"""Pyro ``TransformModule``s mapping latent ``z`` to physical ``x`` (no training, no I/O)."""

__all__: list[str] = []
