"""Sphinx configuration of the mxselect documentation.

Sphinx + Furo + MyST-Parser + autodoc/napoleon: the well-kept choice (Material for MkDocs is in
maintenance mode). The pages are Markdown (MyST), readable on GitHub too; the reference is
generated from the docstrings (Google style: Args/Returns/Raises/Attributes).

The build is offline and strict: ``python3 -m sphinx -W --keep-going -n -b html docs
docs/_build/html`` (``.ci/run``). intersphinx is not enabled because it fetches inventories
over the network; references to other projects' objects (the standard library, dnspython,
aiodns, attrs) are therefore listed in ``nitpick_ignore_regex`` below instead of linked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

# The checkout's package, not whatever else is installed under that name.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sphinx.ext.napoleon.docstring import GoogleDocstring
from sphinx.pycode import ModuleAnalyzer

import mxselect

if TYPE_CHECKING:
    from sphinx.application import Sphinx

project = "mxselect"
author = "The mxselect developers"
copyright = "the mxselect developers, MIT license"
# The version is set in one place, pyproject.toml, and read from the package metadata.
release = mxselect.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = f"mxselect {release}"
html_static_path: list[str] = []

# MyST: heading anchors so that `page.md#a-heading` links work as on GitHub.
myst_heading_anchors = 3

# autodoc + napoleon (Google-style docstrings).
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_typehints = "signature"

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# `Families`, not `mxselect._policy.Families`, in signatures and types.
python_use_unqualified_type_names = True

# -n (nitpicky): every cross-reference must resolve. Without intersphinx (offline build), the
# names of other projects cannot: they are ignored here, and only here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(ipaddress|random|asyncio|collections\.abc|concurrent|enum|ssl|types)\..*"),
    (r"py:.*", r"(datetime|os|sqlite3)\..*"),
    (r"py:.*", r"(dns|aiodns|pycares|attrs|attr|cryptography|distributed|dask)\..*"),
    # A private module named in mxselect.stub's docstring (the wire codec), not documented.
    (r"py:mod", r"mxselect\._wire"),
]


def _attribute_docstring(self: GoogleDocstring) -> list[str]:
    """Napoleon reads the text before the first colon of an attribute's docstring as its type
    (Google style ``x: int: text``); mxselect's attribute docstrings are sentences that may hold
    a colon ("... (RFC 7505 §3): ignored"), and the types come from the annotations. So an
    attribute's, property's or constant's docstring is kept as written."""
    return self._dedent(self._consume_to_end())


GoogleDocstring._parse_attribute_docstring = _attribute_docstring  # type: ignore[method-assign]


def _signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """A default that is a function shows as its repr, which the signature parser cannot read
    (``clock=<built-in function monotonic>``): show the name it is written with."""
    if signature:
        signature = signature.replace("<built-in function monotonic>", "time.monotonic")
        signature = signature.replace("<built-in function time>", "time.time")
    return signature, return_annotation


def _constant_doc(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """A constant re-exported by ``mxselect`` (``CNAME_CHAIN_LIMIT``) keeps the ``#:`` comment
    of the module that defines it; autodoc looks in ``mxselect/__init__.py`` only and, finding
    none, would show the docstring of ``int`` or ``tuple``."""
    if what != "data":
        return
    module_name, _, attr = name.rpartition(".")
    for home in sorted(m for m in sys.modules if m == module_name or m.startswith("mxselect._")):
        if getattr(sys.modules[home], attr, None) is not obj:
            continue
        comment = ModuleAnalyzer.for_module(home).find_attr_docs().get(("", attr))
        if comment:
            lines[:] = list(comment)
            return


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", _signature)
    app.connect("autodoc-process-docstring", _constant_doc)
