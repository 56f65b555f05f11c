"""A griffe extension for the API reference: the docstrings' reStructuredText roles as Markdown.

The docstrings are Google style with a few Sphinx roles (``:class:`SegmentationLoss```,
``:func:`~lmp_lightning.losses.functional.lmp_weights```, ``:math:`w^*```) and ``.. math::``
lines. mkdocstrings reads Markdown, so this extension rewrites them before they are parsed:

- a role naming a Python object becomes its name in code, linked to its entry in the API
  reference where the reference renders it (an optional cross-reference: a name the reference
  does not render stays plain code, without a warning); ``~`` shows the last part only;
- ``:math:`x``` becomes ``\\(x\\)`` and a ``.. math::`` block ``\\[x\\]`` (pymdownx.arithmatex);
- a paragraph ending in ``::`` before an indented block ends in ``:`` (the block is already
  Markdown code);
- an ``Example:`` section is read as griffe's ``Examples:`` (its ``>>>`` lines as code).

mkdocs.yml loads it with ``extensions: [docs/_ext/rst_roles.py:RstRoles]``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|obj|exc|const):`([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")
LITERAL = re.compile(r"(?<=\S)::$")
EXAMPLE = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)


def _identifier(obj: griffe.Object, target: str) -> str:
    """The full path of ``target`` as seen from ``obj``'s docstring, or ``target`` itself."""
    head, _, rest = target.partition(".")
    if head == "lmp_lightning":
        return target
    for scope in (obj, obj.parent):
        if scope is None:
            continue
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            continue
        return f"{path}.{rest}" if rest else path
    return target


def _roles(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match[str]) -> str:
        target = " ".join(match.group(2).split()).lstrip("!")
        short = target.startswith("~")
        target = target.lstrip("~")
        if " <" in target and target.endswith(">"):  # :class:`title <target>`
            title, target = target[:-1].split(" <", 1)
        else:
            title = target.rsplit(".", 1)[-1] if short else target
        if match.group(1) in ("func", "meth") and not title.endswith(")"):
            title += "()"
        identifier = _identifier(obj, target)
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'

    return ROLE.sub(link, text)


def _math(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = MATH_BLOCK.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, body = match.group("indent"), [match.group("first").strip()]
        i += 1
        while (
            i < len(lines)
            and lines[i].strip()
            and len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i].strip())
            i += 1
        formula = " ".join(part for part in body if part)
        out.extend([f"{indent}\\[", f"{indent}{formula}", f"{indent}\\]"])
    text = "\n".join(out)
    return MATH_ROLE.sub(lambda m: f"\\({m.group(1)}\\)", text)


def _literal_blocks(text: str) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines[:-2]):
        if LITERAL.search(line) and not lines[i + 1].strip() and lines[i + 2].startswith(" "):
            lines[i] = line[:-1]
    return "\n".join(lines)


def convert(obj: griffe.Object, text: str) -> str:
    """The docstring ``text`` of ``obj`` with its reStructuredText constructs in Markdown."""
    return _roles(obj, _math(_literal_blocks(EXAMPLE.sub(r"\1Examples:", text))))


class RstRoles(griffe.Extension):
    """Rewrites every docstring of the loaded packages (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_alias or obj.docstring is None:
            return
        obj.docstring.value = convert(obj, obj.docstring.value)
