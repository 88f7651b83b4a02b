"""Exports of derived results: LaTeX, JSON-ready dictionaries, modified losses."""

from ._json import to_dict
from ._latex import latex
from ._loss import ModifiedLoss, NoModifiedLossError, is_gradient_field, modified_loss

__all__ = ["ModifiedLoss", "NoModifiedLossError", "is_gradient_field", "latex", "modified_loss", "to_dict"]
