"""Sphinx configuration for bea's documentation.

Build (warnings are errors, as in CI):  python -m sphinx -W -b html docs docs/_build/html

Pages are MyST Markdown; the notebooks are rendered with the outputs stored in them
(the test suite executes them; the docs build never does). The API reference is
autodoc over the public names (`__all__`); the docstrings are plain text with ASCII
math, so each is shown as its summary line followed by the rest verbatim.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import string
import sys

from docutils import nodes as docutils_nodes
from docutils.statemachine import StringList
from sphinx.ext.autosummary import Autosummary
from sphinx.pycode import ModuleAnalyzer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the working tree's bea, also when it is not installed
# Importing bea imports JAX: stay on the CPU, quietly, with the package's float64 convention.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import bea  # noqa: E402

project = "bea"
author = "the bea authors"
copyright = "the bea authors"
release = version = bea.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

html_theme = "furo"
html_title = f"bea {release}"
html_static_path: list[str] = []

# MyST: $...$ and $$...$$ math in pages and notebooks; heading anchors for links like guide/cli.md#errors.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# Notebooks: render what is stored; tools/build_notebooks.py and tests/test_notebooks.py execute them.
nb_execution_mode = "off"
nb_merge_streams = True

# Autodoc: signatures as written in the source (sp.Symbol("beta") rather than its repr).
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}  # the BeaError hierarchy
autosummary_generate = False

_PUNCTUATION = set(string.punctuation)


def _escape_rst(text: str) -> str:
    """Plain text as reST inline text: `code` spans become literals, other punctuation is escaped."""
    parts = re.split(r"`([^`]+)`", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inside backquotes; "\ " on both sides makes it an inline literal wherever it stands
            out.append("\\ ``" + part + "``\\ ")
        else:
            out.append("".join("\\" + ch if ch in _PUNCTUATION else ch for ch in part))
    return "".join(out)


def _as_text(lines: list[str]) -> list[str]:
    """A plain-text docstring as reST: the summary paragraph as prose, the rest verbatim.

    bea's docstrings are plain text with ASCII math (f~ = f_0 + h f_1, |grad E|^2,
    indented formulas); read as reST they would produce substitution references,
    emphasis and stray indentation. The summary stays searchable prose (autosummary's
    tables read it), and the body keeps its layout in a literal block.
    """
    lines = list(lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return []
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    summary = " ".join(line.strip() for line in lines[:end])
    body = lines[end:]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    processed = [_escape_rst(summary), ""]
    if body:
        processed += ["::", ""] + ["    " + line if line.strip() else "" for line in body] + [""]
    return processed


def _docstring_as_text(app, what, name, obj, options, lines: list[str]) -> None:
    """autodoc-process-docstring: see `_as_text`; module docstrings are shown by public-summary."""
    lines[:] = [] if what == "module" else _as_text(lines)


def _first_public_name(env, obj) -> bool:
    """True the first time a page meets a class or function; later re-exports of it are skipped.

    bea.ModifiedLoss is bea.exports.ModifiedLoss: it is documented once, at the first name on the
    page, which is the one users write.
    """
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return True
    documented = env.temp_data.setdefault("documented", set())  # temp_data lives for one page
    if id(obj) in documented:
        return False
    documented.add(id(obj))
    return True


def _skip_member(app, what, name, obj, skip, options):
    """Subpackages get their own section, not an entry; re-exports are documented once."""
    if inspect.ismodule(obj):
        return True
    if what == "module" and not _first_public_name(app.env, obj):
        return True
    if what == "module" and _is_data(obj):
        return True  # constants are described by public-summary (autodoc finds no docstring for them)
    return None


class PublicSummary(Autosummary):
    """``.. public-summary:: bea.rules``: the module's docstring, a table of its ``__all__``, its constants.

    Follows ``__all__`` so that the reference cannot fall behind the package. Classes and
    functions are documented by the ``automodule`` that follows; constants (``bea.h``,
    ``bea.rules.TABLEAUS``) have no docstring for autodoc to find, so they are described
    here from their ``#:`` comment in the module that defines them, with their value.
    """

    required_arguments = 1
    has_content = False

    def run(self):
        module = importlib.import_module(self.arguments[0])
        seen = self.env.temp_data.setdefault("public_summary", set())  # per page: re-exports once
        names = sorted(n for n in module.__all__ if not inspect.ismodule(getattr(module, n)))
        names = [n for n in names if _is_data(getattr(module, n)) or id(getattr(module, n)) not in seen]
        seen.update(id(getattr(module, n)) for n in names if not _is_data(getattr(module, n)))
        # Relative to the module, as autosummary wants inside that module's section.
        self.env.ref_context["py:module"] = module.__name__
        self.content = StringList(names)
        self.arguments = []
        self._module = module
        intro = docutils_nodes.container()
        docstring = _as_text((inspect.getdoc(module) or "").splitlines())
        self.state.nested_parse(StringList(docstring, "<public-summary>"), self.content_offset, intro)
        nodes = intro.children + super().run()
        constants = StringList()
        for name in (n for n in names if _is_data(getattr(module, n))):
            value = getattr(module, name)
            constants.append(f".. py:data:: {name}", "<public-summary>")
            constants.append(f"   :value: {_short_repr(value)}", "<public-summary>")
            constants.append("", "<public-summary>")
            for line in _comment_of(value, name):
                constants.append("   " + _escape_rst(line), "<public-summary>")
            constants.append("", "<public-summary>")
        container = docutils_nodes.container()
        self.state.nested_parse(constants, self.content_offset, container)
        return nodes + container.children

    def get_items(self, names):
        """Autosummary's rows, with a constant's own comment rather than its type's docstring."""
        items = super().get_items(names)
        rows = []
        for display_name, signature, summary, real_name in items:
            value = getattr(self._module, display_name, None)
            if display_name in self._module.__all__ and _is_data(value):
                summary = _escape_rst(_comment_of(value, display_name)[0])
            rows.append((display_name, signature, summary, real_name))
        return rows


def _is_data(obj) -> bool:
    return not (inspect.isclass(obj) or inspect.isfunction(obj))


def _comment_of(value, name: str) -> list[str]:
    """The ``#:`` comment of the module-level assignment that defines `value` in some bea module.

    Same name first (MAX_SAFE_ORDER), then the same object under another name (bea.h is STEP_SIZE).
    """
    candidates = []
    for module_name, module in sorted(sys.modules.items()):
        if not (module_name == "bea" or module_name.startswith("bea.")) or module is None:
            continue
        try:
            attr_docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except Exception:  # source-less module: nothing to read
            continue
        for (namespace, attr), lines in attr_docs.items():
            if namespace == "" and getattr(module, attr, None) is value and any(line.strip() for line in lines):
                candidates.append((attr != name, [line for line in lines if line.strip()]))
    return min(candidates, key=lambda c: c[0])[1] if candidates else [f"A {type(value).__name__}."]


def _short_repr(value) -> str:
    shown = "{" + ", ".join(f"{key!r}: ..." for key in value) + "}" if isinstance(value, dict) else repr(value)
    return shown if len(shown) < 100 else shown[:95] + " ..."


def setup(app):
    app.connect("autodoc-process-docstring", _docstring_as_text)
    app.connect("autodoc-skip-member", _skip_member)
    app.add_directive("public-summary", PublicSummary)
