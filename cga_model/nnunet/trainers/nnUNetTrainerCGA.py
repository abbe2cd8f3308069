"""Found by nnU-Net's external-trainer search (``-tr nnUNetTrainerCGA``); the class lives in
``cga_model.nnunet.trainer``."""

from cga_model.nnunet.trainer import nnUNetTrainerCGA

__all__ = ["nnUNetTrainerCGA"]
