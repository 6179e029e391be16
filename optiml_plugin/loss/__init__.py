"""OPTiML loss."""

from optiml_plugin.loss.optiml_loss import OPTiMLLoss

__all__ = ["OPTiMLLoss"]
