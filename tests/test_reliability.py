"""Reliability of the ``pyro-nrg`` command and of distillation (issue 24): bad options refused before anything is
written, one process per run folder, divergence told truthfully, resumes whose logs hold each step once, damaged
files named, signals, and a fault-injection test (random kills; the checkpoint always loads and resume is
bit-exact)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyro_nrg.cli import default_out, main
from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.errors import CheckpointError, TrainingDivergedError
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import distill, load_checkpoint
from pyro_nrg.infer.distillation import Distiller
from pyro_nrg.studies.config import IsingStudyConfig
from pyro_nrg.studies.report import RunFolder

ROOT = Path(__file__).resolve().parents[1]
# a tiny run whose evaluation is cheap (no AIS, no NUTS, no exact draws)
FAST = ["--L", "4", "--batch", "16", "--eval-samples", "64", "--walkers", "4", "--mh-steps", "4",
        "--hmc-walkers", "2", "--hmc-samples", "4", "--nuts-chains", "0", "--ais-particles", "0", "--exact-draws",
        "0", "--hidden", "8", "--couplings", "2", "--quiet"]


def _steps(path: Path) -> list[int]:
    return [int(json.loads(line)["step"]) for line in path.read_text().splitlines() if line.strip()]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ------------------------------------------------------------------------------------------------------------
# bad options: exit 2, a message that names the option and the fix, nothing written
# ------------------------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    (["--steps", "-5"], "--steps must be an integer >= 1"),
    (["--batch", "0"], "--batch must be an integer >= 2"),
    (["--batch", "1"], "--batch must be an integer >= 2"),
    (["--lr", "-1"], "--lr must be a finite number > 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
    (["--seed", "8589934592"], "--seed must be an integer in [0, 4294967295]"),
    (["--eval-samples", "0"], "--eval-samples must be an integer >= 16"),
    (["--hmc-walkers", "0"], "--hmc-walkers must be an integer >= 1"),
    (["--hmc-samples", "0"], "--hmc-samples must be an integer >= 4"),
    (["--mh-walkers", "0"], "--mh-walkers must be an integer >= 1"),
    (["--mh-steps", "0"], "--mh-steps must be an integer >= 4"),
    (["--nuts-samples", "0"], "--nuts-samples must be an integer >= 4"),
    (["--ais-temperatures", "1"], "--ais-temperatures must be an integer >= 2"),
    (["--couplings", "0"], "--couplings must be an integer >= 1"),
    (["--hidden", "0"], "--hidden must be an integer >= 1"),
    (["--check-every", "-1"], "--check-every must be an integer >= 1"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be an integer >= 1"),
    (["--L", "12"], "use --L 8 or --L 16"),
    (["--L", "4", "--depth", "3"], "at most log2 L = 2 RG levels"),
    (["--T", "-1"], "--T must be a finite number > 0"),
    (["--translations", "0"], "--translations must be an integer in [1, 8]"),
    (["--threads", "0"], "--threads must be an integer >= 1"),
    (["--device", "foo"], "use --device cpu"),
    (["--out", ""], "an empty --out would write into the current directory"),
    (["--resume"], "--resume needs the folder of the run to continue"),
    (["--T", "3", "phi4"], "option --T does not apply to the phi4 study"),
    (["phi4", "--lam", "-1"], "use --lam 0 or more"),
    (["phi4", "--lam", "0", "--kappa", "10"], "the Gaussian action is not positive definite there"),
    (["ring", "--T", "0"], "--T must be a finite number > 0, got 0.0: give a positive temperature such as --T 1"),
    (["chain", "--n", "1"], "a chain needs at least two particles"),
    (["ring", "--blocks", "0"], "--blocks must be an integer >= 1"),
    (["digits", "--epochs", "0"], "--epochs must be an integer >= 1"),
    (["alanine", "--duration-ns", "0"], "--duration-ns must be a finite number > 0"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=[" ".join(a) or "empty" for a, _ in BAD_OPTIONS])
def test_bad_options_exit_2_before_anything_is_written(tmp_path: Path, capsys, argv, message) -> None:
    out = tmp_path / "run"
    extra = [] if "--out" in argv or argv == ["--resume"] else ["--out", str(out)]
    assert main([*argv, *extra, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and not out.exists()
    if argv[:1] == ["ring"]:
        assert "2.269" not in err  # the ring's temperature, not the Ising T_c


def test_an_impossible_model_found_after_the_folder_was_made_leaves_nothing(tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    import pyro_nrg.cli as cli
    from pyro_nrg.errors import NotPositiveDefiniteError

    def run(config, folder):
        assert (folder.path / "options.json").exists() and (folder.path / "run.lock").exists()
        raise NotPositiveDefiniteError("not normalizable: use a smaller kappa")

    monkeypatch.setitem(cli.STUDIES, "ising", cli.Study(IsingStudyConfig, run, "", ""))
    out = tmp_path / "run"
    assert main(["--out", str(out), "--quiet"]) == 2
    assert "use a smaller kappa" in capsys.readouterr().err and not out.exists()  # the rerun may use this --out


def test_device_cuda_without_cuda_is_refused(tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["--device", "cuda", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "CUDA is not available here" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_out_that_cannot_be_a_run_folder(tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile, "is a file: choose another --out"), (afile / "sub", "is a file: choose another"),
                         (Path("/proc/pyro-nrg-test"), "cannot create the run folder /proc/pyro-nrg-test")):
        assert main([*FAST, "--steps", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert afile.read_text() == "x"
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert main([*FAST, "--steps", "2", "--out", str(ro / "run")]) == 2
        assert "choose another --out in a folder you can write to" in capsys.readouterr().err


def test_resume_options_that_cannot_apply(tmp_path: Path, capsys) -> None:
    assert main([*FAST, "--steps", "2", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "does not exist: drop --resume" in capsys.readouterr().err
    assert main(["ring", "--resume", "--out", str(tmp_path / "ring")]) == 4
    assert "not resumable" in capsys.readouterr().err


def test_default_out_names_the_temperature_and_never_collides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = IsingStudyConfig(L=4, T=3.0)
    first = default_out(cfg)
    assert first.name.startswith("ising-L4-T3-") and first.parent == Path("runs")
    first.mkdir(parents=True)
    assert default_out(cfg) != first  # a run started in the same second gets its own folder
    assert default_out(IsingStudyConfig(L=4, T=2.5)).name.startswith("ising-L4-T2.5-")


# ------------------------------------------------------------------------------------------------------------
# options before the study name; the typed config; options.json
# ------------------------------------------------------------------------------------------------------------


def test_options_before_the_study_name_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert main(["--L", "4", "--hidden", "8", "ising", *FAST[2:], "--steps", "2", "--out", str(out)]) == 0
    opts = json.loads((out / "options.json").read_text())
    assert opts["L"] == 4 and opts["hidden"] == 8 and opts["study"] == "ising" and opts["steps"] == 2
    assert json.loads((out / "config.json").read_text())["flow"]["L"] == 4
    assert not (out / "run.lock").exists()  # released at the end


# ------------------------------------------------------------------------------------------------------------
# one process per run folder
# ------------------------------------------------------------------------------------------------------------


def test_a_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path: Path, capsys, caplog) -> None:
    out = tmp_path / "run"
    assert main([*FAST, "--steps", "3", "--out", str(out)]) == 0
    before = _snapshot(out)
    with RunFolder(out, resume=True):  # another owner (its own open file: the flock conflicts)
        assert main([*FAST, "--steps", "5", "--out", str(out), "--resume"]) == 4
        err = capsys.readouterr().err
        assert f"is in use by pid {os.getpid()} on host {socket.gethostname()}" in err, err
        assert "choose another --out" in err
    assert {k: v for k, v in _snapshot(out).items()} == before  # nothing written by the refused writer
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "then"}))
    with caplog.at_level("WARNING", logger="pyro_nrg"):
        assert main([*FAST, "--steps", "5", "--out", str(out), "--resume"]) == 0
    assert "stale lock" in caplog.text and not (out / "run.lock").exists()
    assert _steps(out / "metrics.jsonl") == [1, 2, 3, 4, 5]
    (out / "run.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "now"}))
    assert main([*FAST, "--steps", "6", "--out", str(out), "--resume"]) == 4
    assert "another machine" in capsys.readouterr().err and (out / "run.lock").exists()


def test_two_writers_at_once_and_sigterm(tmp_path: Path, capsys) -> None:
    """A second ``--resume`` while the first runs exits 4 and leaves the logs alone; SIGTERM stops the first with
    exit 143 and a message naming its checkpoint; resuming then gives each step exactly once."""
    out = tmp_path / "run"
    assert main([*FAST, "--steps", "4", "--checkpoint-every", "2", "--out", str(out)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pyro_nrg.cli", *FAST, "--steps", "100000", "--checkpoint-every",
                             "3", "--out", str(out), "--resume"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not (out / "run.lock").exists() or len(_steps(out / "metrics.jsonl")) < 8):
            time.sleep(0.2)
        assert main([*FAST, "--steps", "100", "--out", str(out), "--resume"]) == 4
        assert "is in use by pid" in capsys.readouterr().err
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM); the last checkpoint" in err and "--resume" in err and "Traceback" not in err
    assert not (out / "run.lock").exists()
    step = int(load_checkpoint(out / "checkpoint.pt")["step"])
    n = step + 2
    assert main([*FAST, "--steps", str(n), "--out", str(out), "--resume"]) == 0
    assert _steps(out / "metrics.jsonl") == list(range(1, n + 1))
    checks = _steps(out / "checks.jsonl")
    assert checks == sorted(set(checks)) and checks[-1] == n


# ------------------------------------------------------------------------------------------------------------
# divergence
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lr", ["1e9", "1000", "10", "1"])
def test_divergence_exits_3_and_says_there_is_no_checkpoint(tmp_path: Path, capsys, lr: str) -> None:
    out = tmp_path / "run"
    assert main([*FAST, "--steps", "40", "--lr", lr, "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "training diverged at step" in err and "no checkpoint was written before it" in err, err
    assert f"--lr {float(lr):g}" in err and "Traceback" not in err
    assert not (out / "checkpoint.pt").exists() and not (out / "run.lock").exists()


def _energy_flow(seed: int = 0):
    torch.manual_seed(seed)
    return IsingRelaxed(4, ISING_TC), neural_rg(L=4, hidden=8, n_couplings=2)


def test_distill_raises_the_documented_error_on_divergence() -> None:
    with pytest.raises(TrainingDivergedError, match="no checkpoint is written by this run"):
        distill(*_energy_flow(), steps=30, batch_size=16, lr=1e9, progress=False)
    torch.manual_seed(0)  # the case: the default flow, no clipping, lr=1 (F_q reached 1.5e12 unnoticed)
    with pytest.raises(TrainingDivergedError, match="far above the median"):
        distill(IsingRelaxed(4, ISING_TC), neural_rg(L=4), steps=60, batch_size=64, lr=1, clip_norm=None,
                progress=False)


def test_a_finite_blow_up_keeps_the_checkpoint_from_before_it(tmp_path: Path) -> None:
    """The learning rate jumps at step 12: the blow-up is detected, and the checkpoint named in the message is
    one whose parameters were checked (its F_q history has no blow-up)."""

    def kick(d: Distiller, rec: dict) -> None:
        if d.step == 12:
            for g in d.optimizer.param_groups:
                g["lr"] = 5.0
            d.config.clip_norm = None

    with pytest.raises(TrainingDivergedError) as exc:
        distill(*_energy_flow(), steps=60, batch_size=16, lr=3e-3, checkpoint_dir=tmp_path, checkpoint_every=5,
                callbacks=[kick], progress=False)
    blob = load_checkpoint(tmp_path / "checkpoint.pt")
    assert f"{tmp_path / 'checkpoint.pt'} (step {blob['step']}), was written before the divergence" in str(exc.value)
    assert blob["step"] == 10
    fq = blob["history"]["f_q"]
    assert len(fq) == 10 and max(fq) < fq[0] + 100
    assert all(torch.isfinite(t).all() for t in blob["flow"].values())


def test_resume_with_a_lower_learning_rate_takes_it(tmp_path: Path) -> None:
    distill(*_energy_flow(), steps=20, batch_size=16, lr=1e-2, warmup_steps=0, checkpoint_dir=tmp_path, progress=False,
            callbacks=[lambda d, rec: d.step == 6])  # stopped at step 6 of 20 (checkpoint there)
    r = distill(*_energy_flow(), steps=20, batch_size=16, lr=1e-3, warmup_steps=0, checkpoint_dir=tmp_path, resume=True,
                progress=False)
    lr = r.history["lr"]
    assert lr[5] > 5e-3 and lr[6] < 1e-3 and lr[6] / lr[5] == pytest.approx(0.1, rel=0.2)  # at once, on schedule


# ------------------------------------------------------------------------------------------------------------
# resume: logs cut back to the checkpoint, no checkpoint, finished runs, dtype, damaged files
# ------------------------------------------------------------------------------------------------------------


def _interrupt_at(monkeypatch, step: int) -> None:
    original = Distiller.train_step

    def train_step(self: Distiller) -> dict:
        if self.step == step:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Distiller, "train_step", train_step)


def test_interrupt_then_resume_holds_each_step_once_and_is_bit_exact(tmp_path: Path, capsys, monkeypatch) -> None:
    opts = [*FAST, "--steps", "12", "--check-every", "2", "--checkpoint-every", "4"]
    ref = tmp_path / "ref"
    assert main([*opts, "--out", str(ref)]) == 0
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_at(m, 10)
        assert main([*opts, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"the last checkpoint ({out / 'checkpoint.pt'}, step 8) is intact" in err, err
    assert _steps(out / "metrics.jsonl") == list(range(1, 11)) and _steps(out / "checks.jsonl") == [2, 4, 6, 8, 10]
    assert main([*opts, "--out", str(out), "--resume"]) == 0
    assert _steps(out / "metrics.jsonl") == list(range(1, 13))
    assert _steps(out / "checks.jsonl") == [2, 4, 6, 8, 10, 12]

    def fq(p: Path) -> list[float]:
        return [json.loads(x)["f_q"] for x in (p / "metrics.jsonl").read_text().splitlines()]

    assert fq(out) == fq(ref)  # bit-exact continuation


def test_interrupt_before_the_first_checkpoint(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    opts = [*FAST, "--steps", "6", "--check-every", "2"]
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        assert main([*opts, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "no checkpoint was written yet, so training restarts from step 0" in err and "is intact" not in err
    assert main([*opts, "--out", str(out), "--resume"]) == 0  # from step 0; the old logs are not appended to
    assert _steps(out / "metrics.jsonl") == [1, 2, 3, 4, 5, 6]
    assert _steps(out / "checks.jsonl") == [2, 4, 6]


def test_resume_of_a_finished_run_and_of_another_dtype_change_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*FAST, "--steps", "3", "--out", str(out)]) == 0
    before = _snapshot(out)
    assert main([*FAST, "--steps", "3", "--out", str(out), "--resume"]) == 4
    assert "is finished (trained 3 of --steps 3" in capsys.readouterr().err
    assert main(["--out", str(out), "--resume", "--dtype", "float64"]) == 4
    err = capsys.readouterr().err
    assert "was made with --dtype float32" in err and "drop --dtype" in err
    assert _snapshot(out) == before
    # a bare --resume takes the run's own options (L=4 ...), so it is also "finished"
    assert main(["--out", str(out), "--resume", "--quiet"]) == 4
    assert "is finished" in capsys.readouterr().err


def test_damaged_run_files_are_named(tmp_path: Path, capsys, caplog) -> None:
    out = tmp_path / "run"
    assert main([*FAST, "--steps", "3", "--check-every", "1", "--out", str(out)]) == 0
    (out / "summary.json").unlink()  # (killed during the evaluation: resume evaluates again)
    good = _snapshot(out)

    def restore() -> None:
        for name, data in good.items():
            (out / name).write_bytes(data)

    (out / "checks.jsonl").write_bytes(good["checks.jsonl"] + b'{"step": 4, "f_q": -4')  # a torn last line
    with caplog.at_level("WARNING", logger="pyro_nrg"):
        assert main([*FAST, "--steps", "3", "--out", str(out), "--resume"]) == 0
    assert "torn last line" in caplog.text and _steps(out / "checks.jsonl") == [1, 2, 3]
    cases = [
        ("checks.jsonl", b'{"step": 1}\nnot json\n{"step": 3}\n', "checks.jsonl line 2 is damaged"),
        ("config.json", b"garbage{", "config.json is damaged (not JSON"),
        ("options.json", b"\x00\x01", "options.json is damaged (not JSON"),
        ("checkpoint.pt", good["checkpoint.pt"][: len(good["checkpoint.pt"]) // 2], "cannot read checkpoint"),
        ("checkpoint.pt", b"", "cannot read checkpoint"),
    ]
    for name, data, message in cases:
        restore()
        (out / "summary.json").unlink(missing_ok=True)
        (out / name).write_bytes(data)
        assert main([*FAST, "--steps", "3", "--out", str(out), "--resume"]) == 4, name
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "weights_only" not in err, err
        assert (out / name).read_bytes() == data  # left as it was
    blob = torch.load(_save_blob(good, tmp_path), weights_only=True)
    for mutate, message in ((lambda b: b.pop("optimizer"), "is incomplete (missing optimizer)"),
                            (lambda b: b["flow"].update({k: torch.zeros(3) for k in list(b["flow"])[:1]}),
                             "does not fit this flow")):
        restore()
        (out / "summary.json").unlink(missing_ok=True)
        b = {**blob, "flow": dict(blob["flow"])}
        mutate(b)
        torch.save(b, out / "checkpoint.pt")
        assert main([*FAST, "--steps", "3", "--out", str(out), "--resume"]) == 4
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def _save_blob(good: dict[str, bytes], tmp: Path) -> Path:
    path = tmp / "good.pt"
    path.write_bytes(good["checkpoint.pt"])
    return path


def test_load_checkpoint_refuses_without_torchs_advice(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "pyro_nrg.distill/1", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(exc.value) and "not loaded as code" in str(exc.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


# ------------------------------------------------------------------------------------------------------------
# fault injection: kill training at random points; the checkpoint always loads and resume is bit-exact
# ------------------------------------------------------------------------------------------------------------


def _train(folder: Path, steps: int) -> dict:
    energy, flow = _energy_flow()
    r = distill(energy, flow, steps=steps, batch_size=16, lr=3e-3, checkpoint_dir=folder, resume=True,
                checkpoint_every=3, progress=False)
    return {k: v.clone() for k, v in r.flow.state_dict().items()}


def _kill_and_resume(tmp_path: Path, kills: int, steps: int, seed: int) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    torch.set_num_threads(1)
    reference = _train(tmp_path / "ref", steps)
    t0 = time.perf_counter()
    _train(tmp_path / "timing", steps)
    full = time.perf_counter() - t0
    rng = random.Random(seed)
    folder = tmp_path / "run"
    loads = 0
    window = full  # kill times are uniform in [0, window]; on a loaded machine the child runs slower than the timing
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:  # the child trains until killed
            try:
                _train(folder, steps)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, window))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if not (folder / "checkpoint.pt").exists():
            window = min(2 * window, 16 * full)  # not even the first checkpoint yet: the machine is busy, wait longer
        else:
            blob = load_checkpoint(folder / "checkpoint.pt")  # never torn
            assert len(blob["history"]["f_q"]) == blob["step"]
            loads += 1
    assert loads > kills // 3
    final = _train(folder, steps)
    assert final.keys() == reference.keys()
    assert all(torch.equal(final[k], reference[k]) for k in final)
    ref_fq = [json.loads(x)["f_q"] for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    fq = [json.loads(x)["f_q"] for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert fq == ref_fq  # each step once, the same values


def test_random_kills_never_tear_the_checkpoint_and_resume_is_bit_exact(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, kills=30, steps=40, seed=0)


@pytest.mark.slow
def test_random_kills_many(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, kills=300, steps=120, seed=1)


def test_cut_jsonl_keeps_each_step_once_and_names_bad_records(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r", lock=False)
    for step in (1, 2, 3, 2, 3, 4):  # a resume that appended to an uncut log
        run.append_jsonl("m.jsonl", {"step": step, "v": step * 10})
    assert [r["step"] for r in run.cut_jsonl("m.jsonl", 3)] == [1, 2, 3]
    assert _steps(run.file("m.jsonl")) == [1, 2, 3]
    run.append_jsonl("m.jsonl", {"step": "x"})
    with pytest.raises(CheckpointError, match="without a numeric 'step'"):
        run.cut_jsonl("m.jsonl", 3)
