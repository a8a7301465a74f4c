"""``python -m mxselect``: the same as the ``mxselect`` command."""

from __future__ import annotations

from ._cli import entry_point

entry_point()
