r"""scikit-learn's bundled 8×8 handwritten digits, dequantized and scaled for density estimation.

``sklearn.datasets.load_digits`` ships 1797 images of 64 pixels with integer intensities :math:`v \in \{0..16\}`
(17 levels); nothing is downloaded. :func:`load_digits_data` makes continuous data with a known change of
variables:

.. math:: x = \frac{v + u}{17} \in (0, 1), \quad u \sim U(0, 1) \quad\text{(uniform dequantization)}, \qquad
          y = a\,(x - \mu),

with :math:`\mu` the per-pixel mean of the training :math:`x` and a global scale :math:`a`. The map
:math:`v + u \mapsto y` has :math:`\ln|\det| = 64 \ln(a / 17)`, so a model density :math:`q(y)` gives the
dequantized log-likelihood :math:`\ln p(v + u) = \ln q(y) + 64\ln(a/17)`, whose mean over :math:`u` is a lower
bound on the discrete :math:`\ln P(v)` (Theis et al., ICLR 2016). :meth:`DigitsData.bits_per_dim` converts a
negative log-likelihood in nats per image of :math:`y` to bits per pixel of :math:`v`. Reconstruction errors are
quoted in :math:`x` units (intensity / 17, i.e. the (0, 1) scale), per pixel.

Phase space for a canonical flow: :math:`y` are the positions (:math:`n = 64`), with Maxwell–Boltzmann momenta of
unit mass at :math:`T = 1` (:func:`~pyro_nrg.infer.canonical.fit_density`), 128 dimensions in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataSettingsError, MissingDependencyError

__all__ = ["DigitsData", "load_digits_data", "pca_reconstruction", "LEVELS"]

#: Number of intensity levels of the 8×8 digits (0..16).
LEVELS = 17


@dataclass
class DigitsData:
    r"""Train/test split of the dequantized, scaled digits.

    Attributes:
        train, test: ``(N, 64)`` scaled positions :math:`y` (train: ``copies`` dequantizations of every image).
        train_images, test_images: ``(N_img, 64)`` integer intensities ``0..16`` (train: one row per image).
        train_labels, test_labels: digit classes.
        mean: ``(64,)`` per-pixel mean :math:`\mu` of the training :math:`x`.
        scale: :math:`a`.
        seed: seed of the split and the dequantization noise.
    """

    train: np.ndarray
    test: np.ndarray
    train_images: np.ndarray
    test_images: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray
    mean: np.ndarray
    scale: float
    seed: int

    @property
    def n_pixels(self) -> int:
        return int(self.train.shape[1])

    @property
    def log_det(self) -> float:
        r""":math:`\ln|\det \partial y / \partial (v+u)| = 64 \ln(a/17)`."""
        return self.n_pixels * math.log(self.scale / LEVELS)

    def bits_per_dim(self, nll_nats: float) -> float:
        r"""Bits per pixel of :math:`v` from a negative log-likelihood of :math:`y` (nats per image):
        :math:`(\mathrm{NLL}_y - 64\ln(a/17)) / (64 \ln 2)`."""
        return (nll_nats - self.log_det) / (self.n_pixels * math.log(2))

    def to_x(self, y: np.ndarray) -> np.ndarray:
        """Scaled positions ``(..., 64)`` back to intensities in (0, 1) units, :math:`x = y / a + \\mu`."""
        return np.asarray(y) / self.scale + self.mean

    def images_x(self, images: np.ndarray) -> np.ndarray:
        """Integer images ``(..., 64)`` in (0, 1) units at the centre of each level, :math:`(v + 1/2)/17`."""
        return (np.asarray(images, dtype=np.float64) + 0.5) / LEVELS


def load_digits_data(test_fraction: float = 0.2, scale: float = 1.0, copies: int = 1, seed: int = 0) -> DigitsData:
    """Load scikit-learn's 8×8 digits, split, dequantize and scale them (see the module docstring).

    Args:
        test_fraction: fraction of the 1797 images held out (stratification is not needed at this size).
        scale: :math:`a` of :math:`y = a (x - \\mu)`.
        copies: dequantizations of every training image (fresh uniform noise each; test images get one).
        seed: seeds the split and the noise.

    Raises:
        MissingDependencyError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise MissingDependencyError(
            f"the digits data come with scikit-learn ({e}): pip install scikit-learn (or pyro-nrg[test])"
        ) from e
    if not 0 < test_fraction < 1 or copies < 1 or not scale > 0:
        raise DataSettingsError(
            f"need 0 < test_fraction < 1, copies >= 1 and scale > 0, got {test_fraction}, {copies}, {scale}"
        )
    bunch = load_digits()
    v = np.asarray(bunch.data, dtype=np.int64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(v.shape[0])
    n_test = int(round(test_fraction * v.shape[0]))
    te, tr = perm[:n_test], perm[n_test:]
    x_train = (np.repeat(v[tr], copies, 0) + rng.uniform(size=(len(tr) * copies, v.shape[1]))) / LEVELS
    x_test = (v[te] + rng.uniform(size=(len(te), v.shape[1]))) / LEVELS
    mean = x_train.mean(0)
    return DigitsData(
        train=scale * (x_train - mean),
        test=scale * (x_test - mean),
        train_images=v[tr],
        test_images=v[te],
        train_labels=labels[tr],
        test_labels=labels[te],
        mean=mean,
        scale=float(scale),
        seed=seed,
    )


def pca_reconstruction(train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    r"""Reconstruct ``test`` ``(N, d)`` from its projection on the top-``k`` principal axes of ``train``.

    .. math:: \hat y = \bar y + V_k V_k^\top (y - \bar y),

    with :math:`V_k` the leading right singular vectors of the centred ``train``. Returns ``(N, d)``.
    """
    train = np.asarray(train, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    mu = train.mean(0)
    _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
    vk = vt[:k].T
    return mu + (test - mu) @ vk @ vk.T
