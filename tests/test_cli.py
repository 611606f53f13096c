"""The pyro-nrg command end to end in a tiny configuration, and the README's quick start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyro_nrg.cli import main

TINY = ["--L", "4", "--steps", "6", "--batch", "16", "--eval-samples", "256", "--walkers", "8", "--mh-steps", "5",
        "--quiet"]


def test_cli_writes_a_complete_run_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "report.md", "free_energy.png"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["f_exact"] < 0 and summary["m2_exact"] is not None
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    assert "report:" in capsys.readouterr().out
    # resume continues from the checkpoint to the new step count
    more = [("9" if prev == "--steps" else a) for prev, a in zip(["", *TINY[:-1]], TINY, strict=True)]
    assert main([*more, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 9
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 9


def test_cli_refuses_impossible_configs_with_a_message(tmp_path: Path, capsys) -> None:
    assert main(["--L", "12", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "power of 2" in err and "L=8 or L=16" in err
    assert main(["--T", "-1", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "temperature" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--steps", "many"])
    assert exc.value.code == 2


def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    assert main([*TINY, "--out", str(out)]) == 4
    assert "resume" in capsys.readouterr().err


def test_readme_quick_start_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None, "README has no python quick-start block"
    exec(compile(code.group(1), "README.md", "exec"), {})
