"""Finding a trainer by name where nnU-Net's own search cannot finish (no torchvision).

nnU-Net 2.8.1 finds a trainer by importing every module of ``nnunetv2.training.nnUNetTrainer``
before it searches the ``nnUNet_extTrainer`` folders. One of them (``primus/primus_trainers``)
imports ``timm``, which imports ``torchvision``: where torchvision is absent (a CPU-only torch
with no matching torchvision wheel, as on this project's machines; ``timm`` declares it as a
dependency), the search fails for every trainer outside ``nnUNetTrainer.py``.

``find_trainer_class(name)`` runs nnU-Net's search and, only when it fails on such a missing
module, runs the same external-folder search nnU-Net would have run next (its own
``recursive_find_python_class`` over the ``nnUNet_extTrainer`` folders, in order).
``nnunet_trainer_lookup()`` puts it in place of nnU-Net's search in its training entry point and
predictor for the duration of a ``with`` block (``cga nnunet-train`` uses it).
"""

from __future__ import annotations

import contextlib
import os

import nnunetv2.inference.predict_from_raw_data as _predict_module
import nnunetv2.run.run_training as _training_module
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name


def find_in_external_folders(name: str):
    """The class ``name`` from the first ``nnUNet_extTrainer`` folder holding it, or None (nnU-Net's external
    search)."""
    for folder in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep):
        if folder.strip() and os.path.isdir(folder):
            found = recursive_find_python_class(
                folder, name, None, base_folder=folder, cleanup_imports_from_base_folder=True
            )
            if found is not None:
                return found
    return None


def find_trainer_class(name: str):
    """nnU-Net's ``recursive_find_trainer_class_by_name``, falling back to the external folders when its search
    of the built-in trainers stops on a missing third-party module (see the module docstring)."""
    try:
        return recursive_find_trainer_class_by_name(name)
    except ModuleNotFoundError as missing:
        found = find_in_external_folders(name)
        if found is None:
            raise RuntimeError(
                f"trainer {name!r} not found in nnUNet_extTrainer={os.environ.get('nnUNet_extTrainer', '')!r}, "
                f"and nnU-Net's search of its own trainers failed: {missing}"
            ) from missing
    if not issubclass(found, nnUNetTrainer):
        raise RuntimeError(f"{name} in nnUNet_extTrainer is not an nnUNetTrainer subclass")
    return found


@contextlib.contextmanager
def nnunet_trainer_lookup():
    """Within the block, nnU-Net's training entry point and predictor find trainers with ``find_trainer_class``."""
    saved = (
        _training_module.recursive_find_trainer_class_by_name,
        _predict_module.recursive_find_trainer_class_by_name,
    )
    _training_module.recursive_find_trainer_class_by_name = find_trainer_class
    _predict_module.recursive_find_trainer_class_by_name = find_trainer_class
    try:
        yield
    finally:
        _training_module.recursive_find_trainer_class_by_name, _predict_module.recursive_find_trainer_class_by_name = (
            saved
        )
