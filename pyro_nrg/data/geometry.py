r"""Molecular geometry: dihedral angles, rigid-body alignment and internal (rigid-body-free) coordinates.

Conventions: coordinates are NumPy arrays ``(*batch, M, 3)`` for ``M`` atoms (any length unit; the alanine data
use ångström); angles are radians in :math:`(-\pi, \pi]`.

* :func:`dihedral` — the torsion angle of four points (IUPAC sign: positive when, looking along the central bond
  from atom 2 to atom 3, the front bond 2→1 turns *clockwise* onto the back bond 3→4).
* :func:`kabsch_align` — remove translation and rotation: each frame is centred on its centroid and rotated
  onto a centred reference by the Kabsch (1976) least-squares rotation, :math:`\min_{R \in SO(3)}
  \sum_i \lVert R x_i - r_i \rVert^2`.
* :class:`RigidBodyProjection` — aligned frames lie *exactly* on a linear subspace of dimension :math:`3M - 6`
  (centroid zero: 3 linear constraints; the Kabsch optimum makes :math:`\sum_i y_i r_i^\top` symmetric: 3 more).
  A density in the full :math:`3M` coordinates would be singular (unbounded likelihood), so the density models
  work in an orthonormal basis of that subspace, in mass-weighted thermal units
  :math:`u_i = \sqrt{m_i / k_B T}\, y_i` where Maxwell–Boltzmann momenta have unit mass at :math:`T = 1`.
"""

from __future__ import annotations

import numpy as np

from ..errors import EventShapeError

__all__ = ["dihedral", "kabsch_align", "RigidBodyProjection", "random_rotation"]


def _check_xyz(x: np.ndarray, who: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 3:
        raise EventShapeError(f"{who} expects coordinates of shape (*batch, M, 3), got {x.shape}: reshape to (N, M, 3)")
    return x


def dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    r"""Torsion angle of the points ``p0-p1-p2-p3``, each ``(*batch, 3)``; returns ``(*batch,)`` radians.

    With :math:`b_0 = p_0 - p_1`, :math:`b_1 = (p_2 - p_1)/|p_2 - p_1|`, :math:`b_2 = p_3 - p_2` and the
    components :math:`v = b_0 - (b_0\cdot b_1) b_1`, :math:`w = b_2 - (b_2 \cdot b_1) b_1` perpendicular to the
    central bond,

    .. math:: \theta = \operatorname{atan2}\big((b_1 \times v)\cdot w,\; v \cdot w\big).

    Example:
        >>> import numpy as np
        >>> t = 1.0
        >>> float(dihedral(np.array([1., 0, 0]), np.zeros(3), np.array([0., 0, 1]),
        ...                np.array([np.cos(t), np.sin(t), 1.])))  # doctest: +ELLIPSIS
        1.0...
    """
    p0, p1, p2, p3 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2, p3))
    b0 = p0 - p1
    b1 = p2 - p1
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    b2 = p3 - p2
    v = b0 - np.sum(b0 * b1, -1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, -1, keepdims=True) * b1
    x = np.sum(v * w, -1)
    y = np.sum(np.cross(b1, v) * w, -1)
    return np.arctan2(y, x)


def kabsch_align(x: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    r"""Remove rigid-body motion: centre every frame and rotate it onto the centred ``reference``.

    .. math:: y_i = R^\star (x_i - \bar x), \qquad R^\star = \arg\min_{R \in SO(3)} \sum_i w_i
       \lVert R (x_i - \bar x) - (r_i - \bar r) \rVert^2,

    with :math:`\bar x = \sum_i w_i x_i / \sum_i w_i`; :math:`R^\star = V\,\mathrm{diag}(1, 1, d)\,U^\top` from the
    SVD :math:`H = \sum_i w_i (x_i - \bar x)(r_i - \bar r)^\top = U S V^\top`, :math:`d = \operatorname{sign}
    \det(V U^\top)` (no reflections).

    Args:
        x: frames ``(*batch, M, 3)``.
        reference: ``(M, 3)``.
        weights: ``(M,)`` non-negative weights (default: equal).

    Returns:
        Aligned frames ``(*batch, M, 3)``, centred on the (weighted) centroid, in the reference's orientation.
    """
    x = _check_xyz(x, "kabsch_align")
    ref = _check_xyz(reference, "kabsch_align (reference)")
    if ref.ndim != 2 or ref.shape != x.shape[-2:]:
        raise EventShapeError(
            f"kabsch_align: reference must be (M, 3) with M = {x.shape[-2]}, got {ref.shape}: pass one frame"
        )
    w = np.ones(x.shape[-2]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    xc = x - np.einsum("i,...ij->...j", w, x)[..., None, :]
    rc = ref - w @ ref
    H = np.einsum("i,...ij,ik->...jk", w, xc, rc)
    U, _, Vt = np.linalg.svd(H)
    V = np.swapaxes(Vt, -1, -2)
    d = np.sign(np.linalg.det(V @ np.swapaxes(U, -1, -2)))
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    R = V @ D @ np.swapaxes(U, -1, -2)
    return np.einsum("...jk,...ik->...ij", R, xc)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix ``(3, 3)`` (QR of a Gaussian matrix, sign-fixed, det +1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class RigidBodyProjection:
    r"""Orthonormal coordinates of the :math:`3M - 6` internal degrees of freedom of Kabsch-aligned frames.

    Aligned frames :math:`y` (:func:`kabsch_align` with equal weights onto ``reference``) satisfy six linear
    constraints, :math:`\sum_i y_i = 0` and :math:`\sum_i (y_i r_i^\top - r_i y_i^\top) = 0`. In mass-weighted
    thermal units :math:`u_{i} = \sqrt{m_i / k_BT}\,y_{i} / \tau` (with :math:`m` in amu, :math:`y` in Å,
    :math:`k_BT` in amu Å² ps⁻² and the time unit :math:`\tau` = ``time_unit_ps``; :math:`u` is a time in units
    of :math:`\tau`) the columns of ``basis`` ``(3M, 3M-6)`` span the allowed subspace orthonormally, and the
    internal coordinates are :math:`s = B^\top u - \bar s`.

    Since the map :math:`y \mapsto s` is linear with orthonormal rows in mass-weighted coordinates, the momenta
    conjugate to :math:`s` of a separable :math:`H = \sum_i p_i^2/2m_i + V` are Maxwell–Boltzmann with *unit* mass
    at *unit* temperature, and Hamilton's equations keep physical time: frequencies of a canonical flow trained on
    :math:`s` are angular frequencies in rad per ``time_unit_ps``.

    Args:
        reference: ``(M, 3)`` the alignment reference (Å).
        masses: ``(M,)`` atomic masses (amu).
        temperature: kelvin.
        mean: optional ``(3M-6,)`` offset subtracted from :math:`s` (set it with :meth:`fit`).
        time_unit_ps: unit of :math:`u` (and of time; frequencies come out in rad per this unit). For alanine,
            ``1/30`` ps puts the balanced widths of :func:`~pyro_nrg.distributions.pca_canonical_flow` near one.
    """

    #: Boltzmann constant in amu Å² ps⁻² K⁻¹ (0.0083144626 kJ/mol/K; 1 kJ/mol = 100 amu Å² ps⁻²).
    KB = 0.83144626

    def __init__(self, reference: np.ndarray, masses: np.ndarray, temperature: float = 300.0,
                 mean: np.ndarray | None = None, time_unit_ps: float = 1.0) -> None:
        ref = _check_xyz(reference, "RigidBodyProjection")
        if ref.ndim != 2:
            raise EventShapeError(f"RigidBodyProjection: reference must be one frame (M, 3), got {ref.shape}: "
                                  f"pass e.g. trajectory.reference")
        m = np.asarray(masses, dtype=np.float64)
        if m.shape != (ref.shape[0],) or not np.all(m > 0):
            raise EventShapeError(
                f"RigidBodyProjection: masses must be ({ref.shape[0]},) and positive, got {m.shape}: "
                f"pass one mass (amu) per atom"
            )
        self.M = ref.shape[0]
        self.reference = ref - ref.mean(0)
        self.masses = m
        self.temperature = float(temperature)
        self.kT = self.KB * self.temperature
        # factor from y (Å) to u (ps): sqrt(m / kT), per coordinate (M*3,)
        self.time_unit_ps = float(time_unit_ps)
        self.scale = np.repeat(np.sqrt(m / self.kT), 3) / self.time_unit_ps
        # constraints on y, written as rows acting on flat y (3M,); in u-space divide columns by scale
        cons = np.zeros((6, 3 * self.M))
        for a in range(3):
            cons[a, a::3] = 1.0
        r = self.reference
        for row, (a, b) in enumerate([(0, 1), (0, 2), (1, 2)]):
            cons[3 + row, a::3] += r[:, b]
            cons[3 + row, b::3] -= r[:, a]
        cons_u = cons / self.scale
        _, sv, vt = np.linalg.svd(cons_u)
        if sv.min() < 1e-8 * sv.max():
            raise EventShapeError(
                "RigidBodyProjection: the reference is degenerate (collinear atoms): pass a non-collinear frame, "
                "e.g. a minimised structure"
            )
        self.basis = vt[6:].T  # (3M, 3M-6) orthonormal, orthogonal to the constraint rows
        self.mean = np.zeros(self.dim) if mean is None else np.asarray(mean, dtype=np.float64)

    @property
    def dim(self) -> int:
        """Number of internal coordinates, :math:`3M - 6`."""
        return 3 * self.M - 6

    def fit(self, aligned: np.ndarray) -> RigidBodyProjection:
        """Set :attr:`mean` to the mean internal coordinate of ``aligned`` frames ``(N, M, 3)``; returns ``self``."""
        self.mean = np.zeros(self.dim)
        self.mean = self.to_internal(aligned).mean(0)
        return self

    def residual(self, aligned: np.ndarray) -> np.ndarray:
        """Norm (in u-units) of the part of each frame outside the internal subspace, ``(*batch,)``."""
        u = _check_xyz(aligned, "RigidBodyProjection.residual").reshape(*np.shape(aligned)[:-2], -1) * self.scale
        return np.linalg.norm(u - (u @ self.basis) @ self.basis.T, axis=-1)

    def to_internal(self, aligned: np.ndarray) -> np.ndarray:
        """Aligned frames ``(*batch, M, 3)`` (Å) → internal coordinates ``(*batch, 3M-6)`` (time units, centred)."""
        y = _check_xyz(aligned, "RigidBodyProjection.to_internal")
        if y.shape[-2] != self.M:
            raise EventShapeError(
                f"RigidBodyProjection: expected {self.M} atoms, got {y.shape[-2]}: use the atoms of the reference"
            )
        u = y.reshape(*y.shape[:-2], 3 * self.M) * self.scale
        return u @ self.basis - self.mean

    def to_cartesian(self, s: np.ndarray) -> np.ndarray:
        """Internal coordinates ``(*batch, 3M-6)`` → aligned frames ``(*batch, M, 3)`` (Å)."""
        s = np.asarray(s, dtype=np.float64)
        if s.shape[-1] != self.dim:
            raise EventShapeError(
                f"RigidBodyProjection: expected internal coordinates (*batch, {self.dim}), got {s.shape}: "
                f"take the position half x[..., :{self.dim}] of a phase-space point"
            )
        u = (s + self.mean) @ self.basis.T
        return (u / self.scale).reshape(*s.shape[:-1], self.M, 3)
