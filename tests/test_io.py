"""The one atomic write (temp files never left behind, full disk named) and the errors of loading a saved flow."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from pyro_nrg import io as nrg_io
from pyro_nrg.distributions import FlowDistribution
from pyro_nrg.errors import CheckpointError, ConfigMismatchError, DiskFullError
from pyro_nrg.flows import neural_rg


def _temps(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_atomic_torch_save_writes_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "sub" / "ckpt.pt"
    nrg_io.atomic_torch_save({"a": torch.arange(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))
    assert _temps(path.parent) == []
    nrg_io.write_json(tmp_path / "c.json", {"L": 8, "x": [1.5]})
    assert json.loads((tmp_path / "c.json").read_text()) == {"L": 8, "x": [1.5]}
    assert _temps(tmp_path) == []


def test_failed_write_removes_its_temp_file_and_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    nrg_io.atomic_torch_save({"v": 1}, path)

    def half_then_fail(tmp) -> None:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt  # a Ctrl-C mid-write, not an OSError

    with pytest.raises(KeyboardInterrupt):
        nrg_io.atomic_write(path, half_then_fail)
    assert _temps(tmp_path) == []
    assert torch.load(path, weights_only=True) == {"v": 1}


def test_stale_temp_files_of_dead_processes_are_removed_on_the_next_save(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    dead = _dead_pid()
    stale_new = nrg_io.temp_path(path).with_name(f".checkpoint.pt.tmp-{nrg_io._HOST}-{dead}")
    stale_old = tmp_path / f".checkpoint.pt.tmp-{dead}"  # the name older versions used
    live = tmp_path / f".checkpoint.pt.tmp-{nrg_io._HOST}-{os.getppid()}"  # a live writer: left alone
    other_host = tmp_path / f".checkpoint.pt.tmp-elsewhere-{dead}"  # cannot tell from here: left alone
    other_file = tmp_path / f".metrics.json.tmp-{dead}"  # another target: not this save's business
    for f in (stale_new, stale_old, live, other_host, other_file):
        f.write_bytes(b"x" * 10)
    nrg_io.atomic_torch_save({"v": 2}, path)
    assert sorted(_temps(tmp_path)) == sorted([live.name, other_host.name, other_file.name])


def test_full_disk_raises_named_error_with_size_and_removes_partial_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "checkpoint.pt"
    nrg_io.atomic_torch_save({"old": torch.zeros(2)}, path)
    obj = {"w": torch.zeros(1000)}
    real_open = open

    class Full:
        def __init__(self, fh) -> None:
            self.fh = fh

        def write(self, data) -> int:
            self.fh.write(bytes(memoryview(data)[:100]))
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.fh.close()

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return Full(fh) if "w" in mode and ".tmp-" in str(file) else fh

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(DiskFullError) as info:
        nrg_io.atomic_torch_save(obj, path)
    monkeypatch.undo()
    msg = str(info.value)
    assert "no space left" in msg and "KiB" in msg and "free" in msg.lower()
    assert isinstance(info.value, OSError)
    assert _temps(tmp_path) == []  # the partial temp file does not keep the disk full
    assert torch.equal(torch.load(path, weights_only=True)["old"], torch.zeros(2))  # old checkpoint intact


# ------------------------------------------------------------------------------------------ FlowDistribution.load


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    q = FlowDistribution(neural_rg(L=4, n_couplings=2, hidden=8))
    path = tmp_path / "prior.pt"
    q.save(path)
    return q, path


def test_load_round_trip_is_frozen_by_default(saved) -> None:
    q, path = saved
    x = q.sample((3,))
    loaded = FlowDistribution.load(path)
    assert torch.allclose(loaded.log_prob(x), q.log_prob(x), atol=1e-5)
    assert not any(p.requires_grad for p in loaded.flow.parameters())
    assert all(p.requires_grad for p in FlowDistribution.load(path, requires_grad=True).flow.parameters())
    assert json.loads(path.with_name("prior.pt.json").read_text())["kind"] == "neural_rg"
    assert _temps(path.parent) == []


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "directory", "missing"])
def test_load_of_a_damaged_file_is_a_named_error(saved, damage) -> None:
    _, path = saved
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file at all" * 10)
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.unlink()
    with pytest.raises(CheckpointError) as info:
        FlowDistribution.load(path)
    msg = str(info.value)
    assert "FlowDistribution.save" in msg or "check the path" in msg
    assert "weights_only=False" not in msg  # never advise unpickling an untrusted file


def test_load_of_weights_that_do_not_fit_the_config_is_a_named_error(saved) -> None:
    q, path = saved
    blob = torch.load(path, weights_only=True)
    blob["config"] = {**blob["config"], "hidden": 16}
    torch.save(blob, path)
    with pytest.raises(ConfigMismatchError, match="do not fit"):
        FlowDistribution.load(path)


def test_load_of_a_distillation_checkpoint_points_to_load_checkpoint(tmp_path) -> None:
    from pyro_nrg.energies import IsingRelaxed
    from pyro_nrg.infer import distill

    energy = IsingRelaxed(4, 3.0)
    flow = neural_rg(L=4, n_couplings=2, hidden=8)
    distill(energy, flow, steps=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="load_checkpoint"):
        FlowDistribution.load(tmp_path / "checkpoint.pt")


def test_log_prob_of_float64_input_on_a_float32_flow(saved) -> None:
    q, _ = saved
    x = q.sample((4,))
    lp64 = q.log_prob(x.double())
    assert lp64.dtype == torch.float64
    assert torch.allclose(lp64, q.log_prob(x).double())
    x64 = x.double().requires_grad_(True)
    q.log_prob(x64).sum().backward()
    assert x64.grad is not None and x64.grad.dtype == torch.float64


def test_symmetrized_mixtures_save_and_load_as_themselves(tmp_path) -> None:
    from pyro_nrg.distributions import LatticeSymmetrized, Z2Symmetrized, load_distribution

    torch.manual_seed(0)
    flow = neural_rg(L=4, n_couplings=2, hidden=8)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the identity, where q(-x) = q(x) anyway
    z2 = Z2Symmetrized(FlowDistribution(flow, latent_scale=1.5))
    both = LatticeSymmetrized(z2, (4, 4), translations=2)
    x = both.sample((5,))
    z2.save(tmp_path / "z2.pt")
    both.save(tmp_path / "both.pt")

    z2_back = Z2Symmetrized.load(tmp_path / "z2.pt")
    assert isinstance(z2_back.base, FlowDistribution) and z2_back.base.latent_scale == 1.5
    assert torch.allclose(z2_back.log_prob(x), z2.log_prob(x), atol=1e-5)
    assert not any(p.requires_grad for p in z2_back.base.flow.parameters())

    both_back = load_distribution(tmp_path / "both.pt")
    assert isinstance(both_back, LatticeSymmetrized) and isinstance(both_back.base, Z2Symmetrized)
    assert both_back.num_maps == both.num_maps
    assert torch.allclose(both_back.log_prob(x), both.log_prob(x), atol=1e-5)

    with pytest.raises(CheckpointError, match="load_distribution"):
        FlowDistribution.load(tmp_path / "z2.pt")  # not silently the one-sector flow
    with pytest.raises(CheckpointError, match="LatticeSymmetrized"):
        Z2Symmetrized.load(tmp_path / "both.pt")
    assert isinstance(load_distribution(tmp_path / "z2.pt"), Z2Symmetrized)


def test_canonical_flow_saves_and_loads_with_its_fixed_map(tmp_path) -> None:
    from pyro_nrg.distributions import CanonicalFlow, canonical_flow, pca_canonical_flow
    from pyro_nrg.testing import perturb_parameters

    torch.manual_seed(0)
    q = torch.randn(200, 3) * torch.tensor([2.0, 1.0, 0.5])
    for model in (canonical_flow(2, temperature=1.5, n_blocks=1, hidden=8),
                  pca_canonical_flow(q - q.mean(0), temperature=1.2, n_blocks=1, hidden=8)):
        perturb_parameters(model.flow, 0.05)
        model.save(tmp_path / "model.pt")
        back = CanonicalFlow.load(tmp_path / "model.pt")
        x = model.sample((6,))
        assert back.temperature == model.temperature and torch.equal(back.omega, model.omega.detach())
        assert torch.allclose(back.log_prob(x), model.log_prob(x), atol=1e-5)
        assert not any(p.requires_grad for p in back.parameters())
        with pytest.raises(CheckpointError, match="CanonicalFlow.load"):
            FlowDistribution.load(tmp_path / "model.pt")
