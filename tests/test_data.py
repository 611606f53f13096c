"""Data pipelines of the real-world demos: geometry, cache, alanine trajectories, digits, data-driven flows."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from pyro_nrg.analysis import mode_mutual_information
from pyro_nrg.analysis.modes import keep_slow_modes, latent_mode_path, position_log_likelihood
from pyro_nrg.data import alanine as alanine_mod
from pyro_nrg.data.alanine import AlanineSettings, alanine_fixture, load_alanine
from pyro_nrg.data.cache import load_arrays, load_or_generate, save_arrays
from pyro_nrg.data.geometry import RigidBodyProjection, dihedral, kabsch_align, random_rotation
from pyro_nrg.distributions import pca_canonical_flow
from pyro_nrg.errors import DataCacheError, DataSettingsError, EventShapeError, MissingDependencyError
from pyro_nrg.testing import check_symplectic

# ---------------------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("theta", [-math.pi + 1e-9, -2.0, -0.5, 0.0, 0.3, math.pi / 2, 2.5, math.pi])
def test_dihedral_known_geometry(theta: float) -> None:
    # p1 at the origin, central bond along z, p0 on x: p3 at azimuth theta has dihedral theta (IUPAC sign)
    rng = np.random.default_rng(0)
    p0, p1, p2 = np.array([1.3, 0.0, -0.4]), np.zeros(3), np.array([0.0, 0.0, 1.5])
    p3 = np.array([0.9 * math.cos(theta), 0.9 * math.sin(theta), 2.1])
    got = float(dihedral(p0, p1, p2, p3))
    assert math.isclose(math.remainder(got - theta, 2 * math.pi), 0.0, abs_tol=1e-9)
    # invariant under rigid motions, flips sign under a reflection
    R, t = random_rotation(rng), rng.normal(size=3)
    moved = [R @ p + t for p in (p0, p1, p2, p3)]
    assert math.isclose(math.remainder(float(dihedral(*moved)) - theta, 2 * math.pi), 0.0, abs_tol=1e-9)
    mirrored = [p * np.array([1, -1, 1]) for p in (p0, p1, p2, p3)]
    assert math.isclose(math.remainder(float(dihedral(*mirrored)) + theta, 2 * math.pi), 0.0, abs_tol=1e-9)


def test_dihedral_batches_and_trans_cis() -> None:
    # butane-like zig-zag: trans = pi, cis = 0
    trans = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.5, -1.0, 0.0]])
    cis = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.5, 1.0, 0.0]])
    x = np.stack([trans, cis])[None].repeat(3, 0)  # (3, 2, 4, 3)
    d = dihedral(x[..., 0, :], x[..., 1, :], x[..., 2, :], x[..., 3, :])
    assert d.shape == (3, 2)
    np.testing.assert_allclose(np.abs(d[:, 0]), math.pi, atol=1e-12)
    np.testing.assert_allclose(d[:, 1], 0.0, atol=1e-12)


def test_dihedral_matches_mdtraj_convention() -> None:
    md = pytest.importorskip("mdtraj")
    traj = alanine_fixture()
    i = traj.dihedral_atoms["phi"]
    top = md.Topology()
    chain = top.add_chain()
    res = top.add_residue("X", chain)
    for _ in range(traj.positions.shape[1]):
        top.add_atom("C", md.element.carbon, res)
    t = md.Trajectory(traj.positions[:20] / 10.0, top)
    np.testing.assert_allclose(md.compute_dihedrals(t, [list(i)])[:, 0], traj.phi[:20], atol=1e-4)


def test_alignment_invariance_under_rigid_motion() -> None:
    traj = alanine_fixture()
    rng = np.random.default_rng(1)
    x = traj.positions[:50]
    moved = np.stack([f @ random_rotation(rng).T + rng.normal(scale=5.0, size=3) for f in x])
    a0, a1 = kabsch_align(x, traj.reference), kabsch_align(moved, traj.reference)
    np.testing.assert_allclose(a1, a0, atol=1e-9)
    np.testing.assert_allclose(a1.mean(-2), 0.0, atol=1e-9)
    phi0, psi0 = traj.dihedrals(x)
    phi1, psi1 = traj.dihedrals(moved)
    np.testing.assert_allclose(phi1, phi0, atol=1e-9)
    np.testing.assert_allclose(psi1, psi0, atol=1e-9)
    np.testing.assert_allclose(phi0, traj.phi[:50], atol=1e-5)  # stored angles come from the aligned frames


def test_kabsch_recovers_a_known_rotation_and_rejects_bad_shapes() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(10, 3))
    ref -= ref.mean(0)
    R = random_rotation(rng)
    np.testing.assert_allclose(kabsch_align(ref @ R.T + 3.0, ref), ref, atol=1e-10)
    with pytest.raises(EventShapeError):
        kabsch_align(ref[:, :2], ref)
    with pytest.raises(EventShapeError):
        kabsch_align(ref, ref[:5])


def test_rigid_body_projection_is_exact_and_orthonormal() -> None:
    traj = alanine_fixture()
    proj = traj.projection(time_unit_ps=1.0)
    assert proj.dim == 24
    np.testing.assert_allclose(proj.basis.T @ proj.basis, np.eye(24), atol=1e-12)
    aligned = kabsch_align(traj.positions, traj.reference)  # float64 realignment of the float32 fixture
    assert proj.residual(aligned).max() < 1e-10  # aligned frames lie on the 24-D subspace
    s = proj.to_internal(aligned)
    assert s.shape == (traj.n_frames, 24)
    np.testing.assert_allclose(s.mean(0), 0.0, atol=1e-3 * s.std())
    np.testing.assert_allclose(proj.to_cartesian(s), aligned, atol=1e-10)
    # mass weighting: the kinetic metric is the identity in internal coordinates
    u = proj.to_internal(aligned[:2]) - proj.to_internal(aligned[:1])
    dy = (aligned[1] - aligned[0]).reshape(-1)
    kin = np.sum(np.repeat(proj.masses, 3) / proj.kT * dy**2)
    assert math.isclose(float(u[1] @ u[1]), kin, rel_tol=1e-8)
    # a different time unit rescales the coordinates
    p30 = RigidBodyProjection(traj.reference, traj.masses, 300.0, time_unit_ps=1 / 30)
    np.testing.assert_allclose(p30.to_internal(aligned), 30 * (s + proj.mean), atol=1e-8)


# ---------------------------------------------------------------------------------------------------- cache


def test_cache_reuse_regenerate_and_corruption(tmp_path) -> None:
    calls = []

    def gen():
        calls.append(1)
        return {"a": np.arange(5.0) * len(calls), "names": np.array(["x", "y"])}

    path = tmp_path / "d.npz"
    a, generated = load_or_generate(path, {"n": 5}, gen)
    assert generated and len(calls) == 1
    b, generated = load_or_generate(path, {"n": 5}, gen)
    assert not generated and len(calls) == 1
    np.testing.assert_array_equal(a["a"], b["a"])
    assert list(b["names"]) == ["x", "y"]
    _, generated = load_or_generate(path, {"n": 6}, gen)  # other settings: regenerated and overwritten
    assert generated and len(calls) == 2
    _, generated = load_or_generate(path, {"n": 6}, gen, regenerate=True)
    assert generated and len(calls) == 3
    # tamper with the data but keep the stored checksum
    arrays, settings = load_arrays(path)
    with np.load(path) as f:
        stored = {k: f[k] for k in f.files}
    stored["a"] = stored["a"] + 1
    np.savez(path, **stored)
    with pytest.raises(DataCacheError, match="checksum"):
        load_or_generate(path, settings, gen)
    # truncated file
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataCacheError, match="regenerate=True"):
        load_or_generate(path, {"n": 6}, gen)
    _, generated = load_or_generate(path, {"n": 6}, gen, regenerate=True)
    assert generated
    save_arrays(path, {"a": np.zeros(2)}, {"n": 7})
    assert load_arrays(path)[1] == {"n": 7}


def test_load_alanine_uses_the_cache(tmp_path, monkeypatch) -> None:
    fixture = alanine_fixture()
    calls = []

    def fake_generate(settings, progress=None):
        calls.append(settings)
        return fixture.to_arrays()

    monkeypatch.setattr(alanine_mod, "generate_alanine", fake_generate)
    s = AlanineSettings(duration_ns=0.03, save_every_ps=0.1)
    t1 = load_alanine(s, cache_dir=tmp_path)
    t2 = load_alanine(s, cache_dir=tmp_path)
    assert t1.generated and not t2.generated and len(calls) == 1
    np.testing.assert_array_equal(t1.positions, t2.positions)
    t3 = load_alanine(AlanineSettings(duration_ns=0.03, save_every_ps=0.1, seed=3), cache_dir=tmp_path)
    assert t3.generated and len(calls) == 2 and t3.path != t1.path


def test_alanine_settings_validation() -> None:
    with pytest.raises(DataSettingsError, match="solvent"):
        AlanineSettings(solvent="water")
    with pytest.raises(DataSettingsError, match="save_every_ps"):
        AlanineSettings(save_every_ps=0.0001)


def test_fixture_is_alanine_dipeptide() -> None:
    traj = alanine_fixture()
    assert traj.positions.shape == (300, 10, 3) and traj.phi.shape == traj.psi.shape == (300,)
    assert [str(a).split(":")[1] for a in traj.atom_names] == ["CH3", "C", "O", "N", "CA", "CB", "C", "O", "N", "C"]
    np.testing.assert_allclose(traj.masses.sum(), 6 * 12.011 + 2 * 14.007 + 2 * 15.999, atol=0.05)
    assert traj.bonds.shape == (9, 2)  # heavy-atom skeleton is a tree
    assert np.all(traj.phi < 0)  # the short run stays in the phi < 0 (C7eq / C5) region


def test_generate_alanine_with_openmm(tmp_path) -> None:
    pytest.importorskip("openmm")
    pytest.importorskip("openmmtools")
    s = AlanineSettings(duration_ns=0.002, save_every_ps=0.5, equilibration_ps=0.5, seed=1)
    t = load_alanine(s, cache_dir=tmp_path, progress=False)
    assert t.generated and t.positions.shape == (4, 10, 3) and t.md_ns_per_minute > 0
    phi, psi = t.dihedrals(t.positions)
    np.testing.assert_allclose(phi, t.phi)
    np.testing.assert_allclose(psi, t.psi)
    assert t.projection().residual(t.positions).max() < 1e-8
    again = load_alanine(s, cache_dir=tmp_path)
    assert not again.generated
    np.testing.assert_array_equal(again.positions, t.positions)


# ---------------------------------------------------------------------------------------------------- digits


def test_digits_pipeline_shapes_and_scaling() -> None:
    pytest.importorskip("sklearn")
    from pyro_nrg.data.digits import LEVELS, load_digits_data, pca_reconstruction

    d = load_digits_data(test_fraction=0.2, scale=2.0, copies=2, seed=0)
    assert d.train.shape == (2 * 1438, 64) and d.test.shape == (359, 64)
    assert d.train_images.shape == (1438, 64) and d.train_labels.shape == (1438,)
    np.testing.assert_allclose(d.train.mean(0), 0.0, atol=1e-12)
    x = d.to_x(d.train)
    assert x.min() > 0 and x.max() < 1
    # dequantization stays inside the pixel's level cell
    lo = np.repeat(d.train_images, 2, 0) / LEVELS
    assert np.all(x >= lo) and np.all(x <= lo + 1 / LEVELS)
    # uniform on the x-cube (density 2^-64 in y = 2(x - mu)) is uniform on 17 levels: log2(17) bits per pixel
    assert math.isclose(d.bits_per_dim(64 * math.log(2.0)), math.log2(LEVELS), rel_tol=1e-12)
    full = pca_reconstruction(d.train, d.test, 64)
    np.testing.assert_allclose(full, d.test, atol=1e-9)
    errs = [np.mean((pca_reconstruction(d.train, d.test, k) - d.test) ** 2) for k in (1, 4, 16)]
    assert errs[0] > errs[1] > errs[2]


# ---------------------------------------------------------------------------------------------------- flows from data


def test_pca_canonical_flow_starts_at_the_gaussian_model() -> None:
    torch.set_default_dtype(torch.float64)
    try:
        rng = np.random.default_rng(3)
        A = rng.normal(size=(4, 4))
        q = torch.tensor(rng.normal(size=(2000, 4)) @ A.T)
        q = q - q.mean(0)
        masses = torch.tensor([1.0, 2.0, 0.5, 3.0])
        model = pca_canonical_flow(q, temperature=1.5, masses=masses, n_blocks=1, hidden=8)
        check_symplectic(model.flow, (8,), atol=1e-8)
        # exact Gaussian log-density of (q, p) with the sample covariance and MB momenta N(0, mT)
        cov = torch.cov(q.T, correction=1)
        gq = torch.distributions.MultivariateNormal(torch.zeros(4, dtype=torch.float64), cov)
        gp = torch.distributions.Normal(0.0, (masses * 1.5).sqrt())
        p = torch.randn(7, 4) * (masses * 1.5).sqrt()
        x = torch.cat([q[:7], p], -1)
        expected = gq.log_prob(q[:7]) + gp.log_prob(p).sum(-1)
        torch.testing.assert_close(model.log_prob(x), expected, atol=1e-8, rtol=1e-8)
        # marginal position likelihood: exact here (positions and momenta independent at initialisation)
        jensen, iw = position_log_likelihood(model, q[:7], masses, n_momenta=3)
        torch.testing.assert_close(iw, gq.log_prob(q[:7]), atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(jensen, iw, atol=1e-8, rtol=1e-8)
        # the slowest mode is the first principal axis; compression with all or no modes
        w, _ = model.frequencies()
        assert torch.all(w[1:] >= w[:-1])
        torch.testing.assert_close(keep_slow_modes(model, x, 4), x, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(keep_slow_modes(model, x, 0), torch.zeros_like(x), atol=1e-12, rtol=0)
        path = latent_mode_path(model, 0, [-1.0, 0.0, 1.0])
        assert path.shape == (3, 8)
        d = path[2, :4] - path[0, :4]
        top = torch.linalg.eigh(cov * masses.sqrt()[:, None] * masses.sqrt()[None])[1][:, -1] / masses.sqrt()
        assert float(torch.abs(torch.nn.functional.cosine_similarity(d, top, dim=0))) > 0.999
        with pytest.raises(EventShapeError):
            keep_slow_modes(model, x, 5)
    finally:
        torch.set_default_dtype(torch.float32)


def test_mode_mutual_information_finds_the_informative_mode() -> None:
    rng = np.random.default_rng(4)
    angle = rng.uniform(-math.pi, math.pi, 3000)
    z = rng.normal(size=(3000, 6))
    z[:, 1] = np.sin(angle) + 0.05 * rng.normal(size=3000)  # Q_2 tracks the angle (up to a two-fold ambiguity)
    mi = mode_mutual_information(z, [0, 1, 2], {"theta": angle})
    assert mi["theta"].shape == (3,)
    assert mi["theta"][1] > 1.0 and abs(mi["theta"][0]) < 0.05 and abs(mi["theta"][2]) < 0.05
    pair = mode_mutual_information(z, [1], {"theta": angle}, pair=True)
    assert pair["theta"][0] > 0.5


# ---------------------------------------------------------------------------------------------------- optional deps


def test_core_package_does_not_import_openmm_or_sklearn() -> None:
    code = "import sys, pyro_nrg, pyro_nrg.data; assert 'openmm' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_openmm_gives_a_named_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "openmm", None)  # makes `import openmm` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pyro-nrg\[md\]"):
        load_alanine(AlanineSettings(duration_ns=0.001, save_every_ps=0.5), cache_dir=tmp_path)
    assert alanine_fixture().n_frames == 300  # the bundled fixture still works
