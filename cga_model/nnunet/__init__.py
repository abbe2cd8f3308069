"""Category-guided attention inside nnU-Net v2 (optional extra: ``pip install .[nnunet]``).

- ``nnUNetTrainerCGA`` (``cga_model.nnunet.trainer``): ``nnUNetv2_train DATASET 3d_fullres FOLD
  -tr nnUNetTrainerCGA`` with ``nnUNet_extTrainer`` set to ``TRAINER_DIR`` (``cga nnunet-train``
  sets it and calls nnU-Net's training entry point).
- ``convert_dataset`` (``cga_model.nnunet.convert``, ``cga nnunet-convert``): a brain-tumour
  dataset folder -> nnU-Net's raw format.

Where torchvision is missing, nnU-Net 2.8.1's own search for a trainer by name stops on an import
error before it reaches ``nnUNet_extTrainer``; ``cga nnunet-train`` then searches those folders
itself (``cga_model.nnunet.lookup``). Importing this package does not import nnU-Net; the trainer
module does.
"""

from __future__ import annotations

import os
from pathlib import Path

TRAINER_DIR = str(Path(__file__).resolve().parent / "trainers")


def with_trainer_dir(environ=None) -> dict:
    """A copy of ``environ`` (default ``os.environ``) whose ``nnUNet_extTrainer`` also lists ``TRAINER_DIR``
    (appended after any folders already there)."""
    env = dict(os.environ if environ is None else environ)
    folders = [f for f in env.get("nnUNet_extTrainer", "").split(os.pathsep) if f]
    if TRAINER_DIR not in folders:
        folders.append(TRAINER_DIR)
    env["nnUNet_extTrainer"] = os.pathsep.join(folders)
    return env
