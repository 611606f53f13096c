"""MkDocs hooks: render every ``tutorials/*.py`` (jupytext "percent" script) as a page under Tutorials.

A script is a sequence of cells, each opened by a ``# %%`` line:

* ``# %% [markdown]`` (or ``[md]``): the following comment lines, with their leading ``# `` removed, are Markdown
  (``[raw]`` cells, uncommented the same way, are shown as plain text);
* ``# %%`` or ``# %% Some title``: the following lines are Python, shown as a fenced code block (after the title,
  if any, as a heading);
* a leading jupytext YAML header (``# ---`` ... ``# ---``) is dropped; code before the first marker is a cell.

Pages are generated at build time, so a new script shows up in the navigation without touching ``mkdocs.yml``;
the script itself is published beside its page for download. ``script_to_markdown`` is pure Python (no MkDocs),
so the test suite checks it without the docs toolchain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TUTORIALS_DIR = "tutorials"  # relative to mkdocs.yml; also the URL prefix of the generated pages
NAV_SECTION = "Tutorials"
# Reading order; scripts not listed follow in alphabetical order.
ORDER = ["distill_ising", "latent_nuts", "denoising", "phi4", "harmonic_chain", "ring", "alanine", "digits"]

_MARKER = re.compile(r"^#\s?%%(?:\s+(?P<rest>.*))?$")
# "# %% Optional title [markdown] key=value": the cell type in brackets, after the title if there is one
_CELL_TYPE = re.compile(r"^(?P<title>.*?)\s*\[(?P<kind>markdown|md|raw)\](?:\s+(?P<meta>.*))?$", re.IGNORECASE)
# jupytext metadata after the title: key="value", key=[...], key={...} (a title may say "L=4", so not numbers)
_METADATA = re.compile(r"\s+[\w.-]+=(?=[\"'\[{])")
_NOQA = re.compile(r"\s+#\s*noqa(?::\s*[A-Z0-9, ]+)?\s*$")


@dataclass
class Cell:
    kind: str  # "markdown", "code" or "raw"
    title: str
    lines: list[str]


def split_cells(source: str) -> list[Cell]:
    """The cells of a percent-format script, in order (empty code cells included)."""
    lines = source.splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    if lines and lines[0].strip() == "# ---":  # jupytext YAML header
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "# ---"), None)
        if end is not None:
            lines = lines[end + 1 :]
    cells: list[Cell] = []
    current = Cell("code", "", [])
    for line in lines:
        m = _MARKER.match(line)
        if m is None:
            current.lines.append(line)
            continue
        cells.append(current)
        rest = (m["rest"] or "").strip()
        typed = _CELL_TYPE.match(rest)
        kind = typed["kind"].lower() if typed else "code"
        title = typed["title"] if typed else rest
        current = Cell("markdown" if kind == "md" else kind, _strip_metadata(title), [])
    cells.append(current)
    if cells[0].kind == "code" and not cells[0].title and not any(s.strip() for s in cells[0].lines):
        cells = cells[1:]  # nothing before the first marker
    return cells


def _strip_metadata(title: str) -> str:
    """``title key="value"`` (jupytext cell metadata after the title) -> ``title``."""
    return _METADATA.split(title, maxsplit=1)[0].strip()


def _uncomment(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        s = line.rstrip()
        if s.startswith("# "):
            out.append(s[2:])
        elif s.startswith("#"):
            out.append(s[1:])
        else:
            out.append(s)  # blank line (or stray code, kept as text)
    return out


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _fence(lines: list[str], lang: str) -> list[str]:
    longest = max((len(m) for line in lines for m in re.findall(r"`{3,}", line)), default=2)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", *lines, fence]


def script_to_markdown(source: str, name: str = "tutorial.py") -> str:
    """Markdown of one percent-format script: Markdown cells as text, code cells as fenced Python.

    Args:
        source: text of the script.
        name: file name shown in the note at the top of the page (e.g. ``distill_ising.py``).

    Returns:
        The page (starts with the script's first Markdown heading if it has one, else a heading from ``name``).
    """
    cells = split_cells(source)
    blocks: list[list[str]] = []
    for cell in cells:
        if cell.title:
            blocks.append([f"## {cell.title[0].upper()}{cell.title[1:]}"])
        if cell.kind == "markdown":
            text = _trim(_uncomment(cell.lines))
            if text:
                blocks.append(text)
            continue
        if cell.kind == "raw":
            text = _trim(_uncomment(cell.lines))
            if text:
                blocks.append(_fence(text, "text"))
            continue
        code = _trim([_NOQA.sub("", line.rstrip()) for line in cell.lines])
        if code:
            blocks.append(_fence(code, "python"))
    if not blocks or not blocks[0][0].startswith("# "):
        blocks.insert(0, [f"# {page_title(source, name)}"])
    note = (
        f"*Generated from [`{name}`]({name}) in `{TUTORIALS_DIR}/`: run it with `python {TUTORIALS_DIR}/{name}` "
        "(`CI=1` for a short run); figures go to `tutorials/output/`.*"
    )
    blocks.insert(1, [note])
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def page_title(source: str, name: str = "tutorial.py") -> str:
    """The first level-1 Markdown heading of the script, else its file name as words."""
    for cell in split_cells(source):
        if cell.kind == "markdown":
            for line in _uncomment(cell.lines):
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(name).stem.replace("_", " ").capitalize()


def tutorial_scripts(root: Path) -> list[Path]:
    """``root/tutorials/*.py`` in reading order (:data:`ORDER` first, then alphabetical)."""
    scripts = sorted(p for p in (root / TUTORIALS_DIR).glob("*.py") if not p.name.startswith("_"))
    rank = {stem: i for i, stem in enumerate(ORDER)}
    return sorted(scripts, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


# --- MkDocs event hooks (mkdocs is imported only here, at build time) ---


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config: Any) -> Any:
    """Fill the ``Tutorials`` nav section (if the nav has one) with a page per script."""
    scripts = tutorial_scripts(_root(config))
    pages = [{page_title(p.read_text(encoding="utf-8"), p.name): f"{TUTORIALS_DIR}/{p.stem}.md"} for p in scripts]
    generated = {f"{TUTORIALS_DIR}/{p.stem}.md" for p in scripts}
    for item in config.nav or []:
        if isinstance(item, dict) and NAV_SECTION in item:
            section = item[NAV_SECTION]
            written = section if isinstance(section, list) else [section]
            # entries written in mkdocs.yml (e.g. the index) stay first; generated pages are not listed twice
            written = [x for x in written if not (isinstance(x, dict) and set(x.values()) <= generated)]
            item[NAV_SECTION] = written + pages
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages, an index of them, and the scripts themselves."""
    from mkdocs.structure.files import File

    scripts = tutorial_scripts(_root(config))
    index = ["# Tutorials", "", "Short flat scripts, one concept each; every one runs in the test suite (shrunk by "
             "`CI=1`).", ""]
    for p in scripts:
        source = p.read_text(encoding="utf-8")
        files.append(File.generated(config, f"{TUTORIALS_DIR}/{p.stem}.md", content=script_to_markdown(source, p.name)))
        files.append(File.generated(config, f"{TUTORIALS_DIR}/{p.name}", content=source))
        index.append(f"- [{page_title(source, p.name)}]({p.stem}.md)")
    if files.get_file_from_path(f"{TUTORIALS_DIR}/index.md") is None:
        files.append(File.generated(config, f"{TUTORIALS_DIR}/index.md", content="\n".join(index) + "\n"))
    return files
