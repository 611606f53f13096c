"""The pyro-nrg command end to end in a tiny configuration, and the README's quick start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import arviz as az
import pytest

from pyro_nrg.cli import main

TINY = ["--L", "4", "--steps", "6", "--batch", "16", "--eval-samples", "256", "--walkers", "8", "--mh-steps", "5",
        "--hmc-walkers", "3", "--hmc-samples", "6", "--nuts-chains", "2", "--nuts-samples", "6",
        "--ais-particles", "32", "--ais-temperatures", "3", "--quiet"]
RUN_FILES = ("options.json", "config.json", "metrics.jsonl", "checks.jsonl", "checkpoint.pt", "summary.json",
             "report.md", "training.png", "observables.png", "configurations.png", "autocorr.png", "trace.png",
             "renormalized.png", "flow_mh.nc", "latent_hmc.nc", "physical_nuts.nc")


def test_cli_writes_a_complete_run_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    for name in RUN_FILES:
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["f_exact"] < 0
    assert summary["references"]["m2"][2].startswith("exact")  # L=4: enumeration
    assert set(summary["samplers"]) == {"flow_mh", "latent_hmc", "physical_nuts"}
    # coverage and KL(p||q) on exact draws of the relaxed model; the reverse KL is (F_q - F)/T
    assert summary["coverage"]["reference_draws"] == "exact" and summary["coverage"]["n_target"] == 4000
    assert summary["kl_p_q"]["n"] == 4000 and summary["kl_p_q"]["kl"] > 0 and summary["kl_q_p"] > 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    printed = capsys.readouterr().out
    assert "report:" in printed and "importance-sampled F" in printed and "physical NUTS" in printed
    assert "KL(p‖q), KL(q‖p) in nats" in printed and "exact draws beyond every flow draw" in printed
    assert "annealed-IS F (3 temperatures)" in printed
    assert "F_q of its mixture over shifts by 0/1 site" in printed  # LatticeSymmetrized, never a higher F_q
    plain, mixed = summary["free_energy"], summary["free_energy_shift_mixture"]
    assert mixed["f_q"] < plain["f_q"] + 5 * (plain["f_q_err"] + mixed["f_q_err"])  # (independent draws)
    ais = summary["annealed_importance_sampling"]
    assert ais["n"] == 32 and ais["grad_evals_per_particle"] == 1 + 3 * 5 and ais["exact_log_z"] is not None
    report = (out / "report.md").read_text()
    for png in (n for n in RUN_FILES if n.endswith(".png")):
        assert f"]({png})" in report, png  # every figure is linked from the report
    assert summary["m2_ess_per_grad_ratio_reliable"] is False  # 6 draws: the ESS ratio must be flagged
    assert "unreliable" in printed and "is not a measurement" in report
    idata = az.from_netcdf(str(out / "latent_hmc.nc"))
    assert idata.posterior["m2"].shape == (3, 6) and "acceptance_rate" in idata.sample_stats
    # resume continues from the checkpoint to the new step count
    more = [("9" if prev == "--steps" else a) for prev, a in zip(["", *TINY[:-1]], TINY, strict=True)]
    assert main([*more, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 9
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 9
    assert json.loads((out / "options.json").read_text())["steps"] == 6  # the original options stay
    assert [r["steps"] for r in map(json.loads, (out / "resumes.jsonl").read_text().splitlines())] == [9]


def test_cli_phi4_chain_and_ring_studies(tmp_path: Path, capsys) -> None:
    assert main(["phi4", *TINY, "--lam", "0", "--odd", "--out", str(tmp_path / "phi4")]) == 0
    s = json.loads((tmp_path / "phi4" / "summary.json").read_text())
    assert s["f_exact"] is not None and s["lam"] == 0  # Gaussian: exact F
    # --odd builds the odd flow and drops the (redundant) Z2 mixture
    assert json.loads((tmp_path / "phi4" / "config.json").read_text())["flow"]["odd"] is True
    assert "odd flow (Z2-symmetric by construction)" in (tmp_path / "phi4" / "report.md").read_text()
    assert main(["chain", "--n", "6", "--steps", "30", "--batch", "32", "--eval-samples", "500", "--quiet",
                 "--out", str(tmp_path / "chain")]) == 0
    s = json.loads((tmp_path / "chain" / "summary.json").read_text())
    assert len(s["omega_exact"]) == 6 and s["max_omega_rel_err"] >= 0 and s["dynamics_max_rel_dev"] >= 0
    for name in ("spectrum.png", "modes.png", "training.png", "report.md", "model.pt", "metrics.jsonl"):
        assert (tmp_path / "chain" / name).exists(), name
    assert main(["ring", "--steps", "5", "--batch", "32", "--hidden", "8", "--eval-samples", "500", "--quiet",
                 "--out", str(tmp_path / "ring")]) == 0
    s = json.loads((tmp_path / "ring" / "summary.json").read_text())
    assert -1 <= s["radius_rank_corr"] <= 1 and (tmp_path / "ring" / "samples.png").exists()
    assert "report:" in capsys.readouterr().out
    assert main(["ring", "--resume", "--out", str(tmp_path / "ring"), "--quiet"]) == 4  # not resumable: clear error


def test_cli_alanine_fixture_and_digits_studies(tmp_path: Path) -> None:
    tiny = ["--epochs", "2", "--blocks", "1", "--hidden", "8", "--quiet"]
    assert main(["alanine", "--fixture", *tiny, "--out", str(tmp_path / "al")]) == 0
    s = json.loads((tmp_path / "al" / "summary.json").read_text())
    assert len(s["mi_psi"]) == 4 and s["frames"] == 300 and len(s["omega_cm1"]) == 24
    for name in ("ramachandran.png", "spectrum.png", "modes.png", "report.md", "model.pt", "metrics.jsonl"):
        assert (tmp_path / "al" / name).exists(), name
    # the implicit-solvent set ships with the package: no OpenMM, 3000 frames of 6 ns
    assert main(["alanine", "--data", "implicit", *tiny, "--out", str(tmp_path / "im")]) == 0
    s = json.loads((tmp_path / "im" / "summary.json").read_text())
    assert s["frames"] == 3000 and s["trajectory_ns"] == 6.0
    assert main(["digits", *tiny, "--out", str(tmp_path / "dg")]) == 0
    s = json.loads((tmp_path / "dg" / "summary.json").read_text())
    assert set(s["recon_mse"]) == {"1", "2", "4", "8", "16", "32"} and s["test_bits_per_dim"] > 0
    assert (tmp_path / "dg" / "compression.png").exists()


def test_cli_alanine_shipped_data_is_at_300_kelvin(tmp_path: Path, capsys) -> None:
    assert main(["alanine", "--temperature", "350", "--out", str(tmp_path / "t"), "--quiet"]) == 2
    assert "--data md" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_cli_help_explains_every_study(capsys) -> None:
    for argv in (["--help"], ["ising", "--help"], ["phi4", "--help"], ["chain", "--help"], ["ring", "--help"],
                 ["alanine", "--help"], ["digits", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "exit codes" in text and "--out" in text and "--seed" in text


def test_cli_refuses_impossible_configs_with_a_message(tmp_path: Path, capsys) -> None:
    assert main(["--L", "12", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "power of 2" in err and "--L 8 or --L 16" in err
    assert main(["--T", "-1", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "temperature" in capsys.readouterr().err
    assert main(["--translations", "0", "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "--translations must be an integer in [1, 8]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--steps", "many"])
    assert exc.value.code == 2


def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    assert main([*TINY, "--out", str(out)]) == 4
    assert "resume" in capsys.readouterr().err


def test_cli_refused_resume_keeps_the_runs_options(tmp_path: Path, capsys) -> None:
    """A resume whose model does not match the checkpoint is refused (exit 4) and changes nothing in the folder."""
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main([*TINY, "--T", "3.0", "--steps", "9", "--out", str(out), "--resume"]) == 4  # another model
    err = capsys.readouterr().err
    assert "error" in err and "checkpoint" in err.lower(), err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before


def test_cli_resume_uses_the_runs_own_flow(tmp_path: Path, caplog) -> None:
    """A run made with other flow options (here the head of older versions, saved without the head/coupling keys
    as they wrote config.json) resumes without repeating them; the options' flow is ignored, with a warning."""
    out = tmp_path / "run"
    fewer = [("3" if prev == "--steps" else a) for prev, a in zip(["", *TINY[:-1]], TINY, strict=True)]
    assert main([*fewer, "--head", "none", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    cfg["flow"] = {k: v for k, v in cfg["flow"].items() if not k.startswith(("head", "coupling"))}
    (out / "config.json").write_text(json.dumps(cfg))
    with caplog.at_level("WARNING", logger="pyro_nrg"):  # (without --head the resume would take the run's own)
        assert main([*TINY, "--head", "tanh", "--out", str(out), "--resume"]) == 0
    assert "head='none'" in caplog.text and "head='tanh'" in caplog.text
    assert json.loads((out / "summary.json").read_text())["steps"] == 6
    assert json.loads((out / "config.json").read_text())["flow"]["head"] == "none"


def test_readme_quick_start_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None, "README has no python quick-start block"
    exec(compile(code.group(1), "README.md", "exec"), {})


def test_flow_mh_starts_are_distinct_late_draws_of_every_chain() -> None:
    import torch

    from pyro_nrg.infer.starts import stationary_starts

    draws = torch.arange(3 * 10 * 2, dtype=torch.float64).reshape(3, 10, 2)
    starts = stationary_starts(draws, 7)
    assert starts.shape == (7, 2)
    torch.testing.assert_close(starts[:3], draws[:, -1])  # the last draw of every chain first
    assert len({tuple(r) for r in starts.tolist()}) == 7  # no two starts coincide
    assert all(any(torch.equal(s, d) for d in draws[:, 5:].reshape(-1, 2)) for s in starts)  # second halves only
    assert stationary_starts(draws[:, :1], 5).shape == (5, 2)  # one draw per chain: repeats are unavoidable
