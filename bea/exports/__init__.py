"""Exports of derived results: LaTeX and JSON-ready dictionaries."""

from ._json import to_dict
from ._latex import latex

__all__ = ["latex", "to_dict"]
