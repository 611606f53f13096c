"""Griffe extension: read the reST bits of pyro_nrg's Google-style docstrings as Markdown for mkdocstrings.

The docstrings are written for both ``help()`` and the site, in the Sphinx/Pyro idiom:

* ``:math:`x``` (inline) and ``.. math::`` blocks become ``$x$`` / ``$$ ... $$`` (rendered by
  ``pymdownx.arithmatex`` and MathJax);
* ``:func:`~pyro_nrg.x.f```, ``:class:`Name``` and the other Python roles become *optional* autorefs: a link
  where the target is documented on the site, plain code otherwise (external names such as ``torch.Tensor``),
  never a warning;
* an ``Example:`` heading becomes griffe's ``Examples:`` section, so doctests render as code;
* a paragraph ending in ``::`` (reST literal block) ends in ``:`` (the indented block is Markdown code already).

Only the docstring text seen by the documentation changes; the package is untouched.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_PY_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const):`(~?)([^`<>]+?)(\(\))?`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
_EXAMPLE_HEADING = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$")
_LITERAL_MARKER = re.compile(r"::[ \t]*$")
_ROOTS = ("pyro_nrg", "torch", "pyro", "numpy", "scipy", "arviz", "matplotlib", "concurrent", "collections")


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _math_blocks(lines: list[str]) -> list[str]:
    """``.. math:: a`` plus its indented continuation lines -> a ``$$`` block surrounded by blank lines."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m["indent"]
        body = [m["rest"].strip()] if m["rest"].strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent_of(lines[i]) > len(indent)):
            if not lines[i].strip() and body and (i + 1 >= len(lines) or _indent_of(lines[i + 1]) <= len(indent)):
                break  # a blank line that ends the directive
            if lines[i].strip():
                body.append(lines[i].strip())
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return out


def _literal_markers(lines: list[str]) -> list[str]:
    """reST ``text::`` before an indented block -> ``text:`` (a bare ``::`` line is dropped)."""
    out = []
    for line in lines:
        if _LITERAL_MARKER.search(line) and not line.lstrip().startswith(".."):
            stripped = _LITERAL_MARKER.sub("", line)
            if not stripped.strip():
                continue
            line = stripped + ":"
        out.append(line)
    return out


def _target(obj: griffe.Object, name: str, public: dict[str, str]) -> str:
    """Documented path for a role target written relative to ``obj`` (unchanged when it cannot be resolved).

    A name defined in a private submodule and re-exported by a package (``pyro_nrg.infer.flow_mh.flow_mh``) is
    documented under the package (``pyro_nrg.infer.flow_mh``): ``public`` maps the first to the second.
    """
    head, _, tail = name.partition(".")
    if head not in _ROOTS:
        scope: Any = obj
        while scope is not None:
            try:
                resolved = scope.resolve(head)
            except (griffe.NameResolutionError, AttributeError, KeyError, ValueError):
                scope = scope.parent
                continue
            name = f"{resolved}.{tail}" if tail else resolved
            break
    if name in public:  # exact match first: a shadowed submodule name -> the function it exports
        return public[name]
    for path, documented in public.items():
        if name.startswith(path + ".") and documented != f"{path}.{path.rsplit('.', 1)[-1]}":
            return documented + name[len(path) :]
    return name


def _public_paths(pkg: griffe.Module) -> dict[str, str]:
    """Canonical path -> documented path, for the names in the ``__all__`` of the package's subpackages/modules.

    Griffe keeps a submodule over a same-named imported function (``pyro_nrg.infer.flow_mh`` is the module, not
    the function ``flow_mh`` that ``pyro_nrg.infer`` re-exports); such functions are documented under their
    canonical path (``pyro_nrg.infer.flow_mh.flow_mh``, see docs/api/infer.md), and the shadowed name maps there.
    """
    public: dict[str, str] = {}
    modules = [m for m in pkg.modules.values() if not m.is_alias]
    while modules:
        mod = modules.pop()
        modules += [m for m in mod.modules.values() if not m.is_alias]
        for name in mod.exports or ():
            member = mod.members.get(name) if isinstance(name, str) else None
            if member is not None and not member.is_alias and member.is_module and name in member.members:
                public[member.path] = f"{member.path}.{name}"
            elif member is not None and member.is_alias:
                try:
                    target = member.final_target.path
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    continue
                if target != f"{mod.path}.{name}":
                    public.setdefault(target, f"{mod.path}.{name}")
    return public


def _py_roles(obj: griffe.Object, text: str, public: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        short, name, parens = m[1], m[2].strip(), m[3] or ""
        title = name.rsplit(".", 1)[-1] if short else name
        ident = _target(obj, name, public)
        return (
            f'<autoref identifier="{html.escape(ident)}" optional><code>{html.escape(title + parens)}</code></autoref>'
        )

    return _PY_ROLE.sub(repl, text)


def rst_to_markdown(text: str, obj: griffe.Object | None = None, public: dict[str, str] | None = None) -> str:
    """Rewrite one docstring (see the module docstring for what changes)."""
    lines = text.split("\n")
    lines = _math_blocks(lines)
    lines = [_EXAMPLE_HEADING.sub(r"\g<indent>Examples:", line) for line in lines]
    lines = _literal_markers(lines)
    text = "\n".join(lines)
    text = _MATH_ROLE.sub(lambda m: f"${m[1].strip()}$", text)
    if obj is not None:
        text = _py_roles(obj, text, public or {})
    return text


def _walk(obj: griffe.Object, public: dict[str, str], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.docstring is not None:
        obj.docstring.value = rst_to_markdown(obj.docstring.value, obj, public)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member, public, seen)


class RstToMarkdown(griffe.Extension):
    """Apply :func:`rst_to_markdown` to every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, _public_paths(pkg), set())
