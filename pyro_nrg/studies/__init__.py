"""The studies behind the ``pyro-nrg`` command, one module each, writing run folders with reports.

* :mod:`pyro_nrg.studies.lattice` — NeuralRG on the Ising relaxation and on φ⁴ (``pyro-nrg ising|phi4``).
* :mod:`pyro_nrg.studies.canonical` — neural canonical transformations of the harmonic chain and the ring
  (``pyro-nrg chain|ring``).
* :mod:`pyro_nrg.studies.demos` — density estimation on alanine dipeptide MD and on digits
  (``pyro-nrg alanine|digits``).
* :mod:`pyro_nrg.studies.report` — run folders, Markdown reports and console tables.

Each ``run_*_study(args)`` takes the parsed command-line options (:func:`pyro_nrg.cli.build_parser`), writes the
run folder and returns a :class:`~pyro_nrg.studies.report.StudyOutcome` (report path, summary table, summary
dict); from Python, call ``pyro_nrg.cli.main([...])`` with the same arguments as the command.
"""

from .canonical import run_canonical_study
from .demos import run_demo_study
from .lattice import run_lattice_study
from .report import RunFolder, StudyOutcome

__all__ = ["run_lattice_study", "run_canonical_study", "run_demo_study", "RunFolder", "StudyOutcome"]
