"""The documentation machinery: tutorial scripts -> Markdown pages (docs/hooks.py), reST docstring bits -> Markdown
(docs/griffe_rst.py), and an API reference page for every public module. The site itself is built, warnings as
errors, by `make docs` in CI."""

from __future__ import annotations

import importlib.util
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import pyro_nrg

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


hooks = _load("pyro_nrg_docs_hooks", ROOT / "docs" / "hooks.py")

TINY = '''\
# ---
# jupyter:
#   kernelspec: {name: python3}
# ---

# %% [markdown]
# # A tiny tutorial
#
# Some *text* with math $E(x)$.
#
#     indented stays indented

# %%
import os  # noqa: E402

# %% the model tags=["parameters"]
x = 1
print("```")

# %% [md]
# ## A section

# %%

# %% [raw]
# left as text
'''


def test_script_to_markdown_tiny():
    md = hooks.script_to_markdown(TINY, "tiny.py")
    assert md.splitlines()[0] == "# A tiny tutorial"
    assert "Some *text* with math $E(x)$." in md
    assert "\n    indented stays indented\n" in md  # Markdown-cell indentation kept (code blocks in prose)
    assert "jupyter" not in md and "kernelspec" not in md  # the jupytext header is dropped
    assert "[`tiny.py`](tiny.py)" in md  # the note links the published script
    assert "```python\nimport os\n```" in md  # noqa comments are stripped from the shown code
    assert "## The model\n" in md and "tags=" not in md  # cell title -> heading, metadata dropped
    assert '````python\nx = 1\nprint("```")\n````' in md  # a longer fence around code that contains one
    assert "## A section" in md  # [md] cells are Markdown too
    assert "```text\nleft as text\n```" in md  # raw cells: plain text
    assert md.index("A tiny tutorial") < md.index("import os") < md.index("x = 1") < md.index("A section")
    assert md.endswith("\n") and "\n\n\n" not in md  # empty cells leave no holes


def test_split_cells_kinds_and_titles():
    cells = hooks.split_cells("a = 1\n# %% first L=4 cell\nb = 2\n#%% [markdown]\n# text\n# %% Title [markdown]\n# t\n")
    assert [(c.kind, c.title) for c in cells] == [
        ("code", ""),
        ("code", "first L=4 cell"),  # "L=4" is part of the title, not metadata
        ("markdown", ""),
        ("markdown", "Title"),
    ]
    assert cells[0].lines == ["a = 1"]


def test_page_title_and_fallback():
    assert hooks.page_title(TINY, "tiny.py") == "A tiny tutorial"
    md = hooks.script_to_markdown("# %%\nx = 1\n", "my_first_tutorial.py")
    assert md.startswith("# My first tutorial\n")


def test_every_tutorial_becomes_a_page():
    scripts = hooks.tutorial_scripts(ROOT)
    assert {p.name for p in scripts} == {p.name for p in (ROOT / "tutorials").glob("*.py")}
    known = [s for s in hooks.ORDER if s in {p.stem for p in scripts}]
    assert [p.stem for p in scripts][: len(known)] == known
    for p in scripts:
        md = hooks.script_to_markdown(p.read_text(encoding="utf-8"), p.name)
        assert md.startswith("# ") and "```python" in md, p.name


def test_api_reference_covers_every_public_module():
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: (pyro_nrg(?:\.\w+)?)\s*$", page.read_text(encoding="utf-8"), re.M))
    public = {f"pyro_nrg.{m.name}" for m in pkgutil.iter_modules(pyro_nrg.__path__) if not m.name.startswith("_")}
    assert public <= documented, f"add a page under docs/api/ (and to the nav in mkdocs.yml) for {public - documented}"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs" / "api").glob("*.md"):
        assert f"api/{page.name}" in nav, f"docs/api/{page.name} is not in the nav of mkdocs.yml"


def test_rst_roles_become_markdown():
    pytest.importorskip("griffe")
    rst = _load("pyro_nrg_docs_griffe_rst", ROOT / "docs" / "griffe_rst.py")
    text = (
        "Energy :math:`E(x) = x^2` of :class:`~pyro_nrg.energies.Phi4`::\n"
        "\n"
        "    code\n"
        "\n"
        ".. math:: a = b\n"
        "   + c\n"
        "\n"
        "Example:\n"
        "    >>> 1 + 1\n"
        "    2\n"
    )

    class Obj:  # enough of a griffe object for an absolute target
        parent = None

    md = rst.rst_to_markdown(text, Obj())
    assert "$E(x) = x^2$" in md and ":math:" not in md
    assert '<autoref identifier="pyro_nrg.energies.Phi4" optional><code>Phi4</code></autoref>:\n' in md
    assert "\n$$\na = b\n+ c\n$$\n" in md
    assert "\nExamples:\n    >>> 1 + 1" in md
