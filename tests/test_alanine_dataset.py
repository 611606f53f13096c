"""Alanine data sets of several independent runs: start basins, shipping, and the data set in the package."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pyro_nrg.data import alanine as al
from pyro_nrg.data.cache import checksum
from pyro_nrg.errors import DataCacheError, DataSettingsError


def test_start_dihedrals_are_validated_and_kept_out_of_old_cache_keys():
    with pytest.raises(DataSettingsError, match="phi, psi"):
        al.AlanineSettings(start_dihedrals=(10.0,))
    with pytest.raises(DataSettingsError, match="phi, psi"):
        al.AlanineSettings(start_dihedrals=(float("nan"), 0.0))
    plain = al.AlanineSettings().cache_key()
    old_fields = {f.name for f in dataclasses.fields(al.AlanineSettings)} - {"start_dihedrals", "start_restraint_ps"}
    assert set(plain) == old_fields  # caches made before start basins existed keep their names
    started = al.AlanineSettings(start_dihedrals=[70, -70]).cache_key()
    assert started["start_dihedrals"] == [70.0, -70.0]


def _runs(n_runs: int = 2) -> list[al.AlanineTrajectory]:
    base = al.alanine_fixture()
    runs = []
    for i in range(n_runs):
        s = dataclasses.replace(base.settings, seed=10 + i, start_dihedrals=list(al.START_BASINS.values())[i])
        runs.append(dataclasses.replace(base, settings=s, positions=base.positions + i))
    return runs


def test_ship_and_load_round_trip(tmp_path, monkeypatch):
    runs = _runs()
    path = al.ship_dataset(runs, every_ps=0.2, path=tmp_path / "alanine_vacuum.npz")
    arrays, settings = al.load_arrays(path)
    monkeypatch.setattr(al, "_dataset_path", lambda solvent: path)
    monkeypatch.setitem(al.DATASETS, "vacuum", {"checksum": checksum(arrays, settings)})
    traj = al.alanine_dataset("vacuum")
    n = runs[0].n_frames // 2
    assert traj.n_frames == 2 * n and traj.positions.dtype == np.float64
    assert np.array_equal(np.bincount(traj.run), [n, n])
    np.testing.assert_allclose(traj.positions[:n], runs[0].positions[1::2], atol=1e-5)  # float32 in the file
    np.testing.assert_array_equal(traj.phi[n:], runs[1].phi[1::2])
    assert [r.seed for r in traj.run_settings] == [10, 11]
    assert traj.settings.duration_ns == pytest.approx(2 * runs[0].settings.duration_ns)
    assert traj.settings.save_every_ps == 0.2


def test_ship_refuses_mixed_runs_and_bad_intervals(tmp_path):
    runs = _runs()
    with pytest.raises(DataSettingsError, match="multiple"):
        al.ship_dataset(runs, every_ps=0.25, path=tmp_path / "a.npz")
    other = dataclasses.replace(runs[1], settings=dataclasses.replace(runs[1].settings, solvent="implicit"))
    with pytest.raises(DataSettingsError, match="solvent"):
        al.ship_dataset([runs[0], other], every_ps=0.2, path=tmp_path / "a.npz")
    assert not (tmp_path / "a.npz").exists()


def test_unknown_or_tampered_data_set(tmp_path, monkeypatch):
    with pytest.raises(DataSettingsError, match="load_alanine"):
        al.alanine_dataset("explicit")
    path = al.ship_dataset(_runs(), every_ps=0.2, path=tmp_path / "alanine_vacuum.npz")
    monkeypatch.setattr(al, "_dataset_path", lambda solvent: path)
    monkeypatch.setitem(al.DATASETS, "vacuum", {"checksum": "0" * 64})
    with pytest.raises(DataCacheError, match="reinstall"):
        al.alanine_dataset("vacuum")


def test_shipped_vacuum_data_set():
    """The file in the package: three 250 ns runs at 300 K from three basins, one frame every 20 ps."""
    traj = al.alanine_dataset("vacuum")
    assert [r.start_dihedrals for r in traj.run_settings] == list(al.START_BASINS.values())
    assert len({r.seed for r in traj.run_settings}) == 3
    assert all(r.duration_ns == 250.0 and r.temperature == 300.0 and r.solvent == "vacuum"
               for r in traj.run_settings)
    assert traj.n_frames == 37_500 and traj.settings.save_every_ps == 20.0
    assert np.array_equal(np.bincount(traj.run), [12_500] * 3)
    assert traj.positions.shape == (37_500, 10, 3)
    phi, psi = traj.dihedrals(traj.positions[:100])
    np.testing.assert_allclose(np.cos(phi), np.cos(traj.phi[:100]), atol=1e-4)
    np.testing.assert_allclose(np.cos(psi), np.cos(traj.psi[:100]), atol=1e-4)


def test_shipped_implicit_data_set():
    traj = al.alanine_dataset("implicit")
    assert traj.settings.solvent == "implicit" and traj.n_frames == 3000
    assert [r.duration_ns for r in traj.run_settings] == [2.0, 2.0, 2.0]
    assert [r.start_dihedrals for r in traj.run_settings] == list(al.START_BASINS.values())


def test_restrained_start_reaches_the_basin():
    pytest.importorskip("openmm")
    s = al.AlanineSettings(duration_ns=0.005, save_every_ps=1.0, equilibration_ps=0.0, start_dihedrals=(70, -70))
    arrays = al.generate_alanine(s, progress=False)
    assert np.degrees(arrays["phi"][0]) > 0  # C7ax: phi > 0, which the minimised structure (C5) is not
    ref = al.generate_alanine(al.AlanineSettings(duration_ns=0.001, save_every_ps=1.0, equilibration_ps=0.0),
                              progress=False)["reference"]
    np.testing.assert_allclose(arrays["reference"], ref, atol=1e-8)  # one alignment reference for every run
