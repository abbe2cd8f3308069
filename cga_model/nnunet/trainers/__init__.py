"""The folder nnU-Net searches for external trainers: ``nnUNet_extTrainer=<this folder>``.

nnU-Net imports every module here as a top-level module (the folder on ``sys.path``), so they
use absolute imports only and re-export the trainers, which live in ``cga_model.nnunet.trainer``.
"""
