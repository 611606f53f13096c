"""The studies behind the ``pyro-nrg`` command, one module each, writing run folders with reports.

* :mod:`pyro_nrg.studies.lattice` — NeuralRG on the Ising relaxation and on φ⁴ (``pyro-nrg ising|phi4``).
* :mod:`pyro_nrg.studies.canonical` — neural canonical transformations of the harmonic chain and the ring
  (``pyro-nrg chain|ring``).
* :mod:`pyro_nrg.studies.demos` — density estimation on alanine dipeptide MD and on digits
  (``pyro-nrg alanine|digits``).
* :mod:`pyro_nrg.studies.sweep` — one temperature-conditioned flow over a range of T (``pyro-nrg sweep``).
* :mod:`pyro_nrg.studies.config` — the typed, validated configuration of each study (its fields are the options).
* :mod:`pyro_nrg.studies.report` — run folders (owned by one process at a time), Markdown reports, console tables.

Each ``run_*_study(config, run)`` takes a validated config (:mod:`pyro_nrg.studies.config`) and a
:class:`~pyro_nrg.studies.report.RunFolder`, writes the run and returns a
:class:`~pyro_nrg.studies.report.StudyOutcome` (report path, summary table, summary dict); from Python, call
``pyro_nrg.cli.main([...])`` with the same arguments as the command, or the phases of
:mod:`pyro_nrg.studies.lattice` one by one.
"""

from .canonical import run_canonical_study
from .config import STUDY_CONFIGS, StudyConfig
from .demos import run_demo_study
from .lattice import run_lattice_study
from .report import RunFolder, StudyOutcome
from .sweep import run_sweep_study

__all__ = ["run_lattice_study", "run_canonical_study", "run_demo_study", "run_sweep_study", "RunFolder", "StudyOutcome",
           "StudyConfig", "STUDY_CONFIGS"]
