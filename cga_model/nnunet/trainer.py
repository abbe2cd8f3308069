"""``nnUNetTrainerCGA``: nnU-Net v2's trainer with category-guided attention added to the planned U-Net.

Everything nnU-Net plans and does stays (architecture, patch size, augmentation, Dice + CE or
BCE loss, deep supervision, poly learning rate, checkpoints, validation, prediction); the
trainer adds, through ``cga_model.nnunet.network.guided_network``, the attention conv path on
the input and the intra-class update on the bottleneck (``update_stage``), and adds to nnU-Net's loss the
attention MSE and, from epoch ``inter_start_epoch`` on, the inter-class loss, with the weights of
``loss_config`` (a ``LossConfig``, as ``cga train`` uses; see ``cga_model.nnunet.loss``). Change
them in a subclass (class attributes), as nnU-Net's own trainer variants do, e.g.
``loss_config = LossConfig(attention_weight=20)``.

nnU-Net finds the class through ``nnUNet_extTrainer`` (``cga_model.nnunet.TRAINER_DIR``);
its predictor rebuilds the network with ``build_network_architecture`` from the plans alone.
Datasets with an ignore label are refused (the attention target would be undefined there).
``torch.compile`` (nnU-Net's default on CUDA) stays off unless ``nnUNet_compile=1`` asks for it:
the forward hook of the guided network has not been tested under compilation.
"""

from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn
from torch._dynamo import OptimizedModule

from ..nn.loss_config import LossConfig
from .loss import GuidedLoss
from .network import GuidedNetwork, guided_network


class nnUNetTrainerCGA(nnUNetTrainer):
    loss_config = LossConfig()  # attention_weight, inter_weight, inter_form, inter_start_epoch, inter_sign
    mask_mode = "hard"  # "hard" (argmax, as the paper) or "soft" masks of the intra-class update
    # encoder stage whose output the update replaces: -1 = the bottleneck
    # (3: total stride 8 in typical 3d_fullres plans)
    update_stage = -1

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager: PlansManager,
        configuration_manager: ConfigurationManager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> nn.Module:
        host = nnUNetTrainer.build_network_architecture(
            plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision
        )
        return guided_network(
            host,
            pool_op_kernel_sizes=configuration_manager.pool_op_kernel_sizes,
            num_input_channels=num_input_channels,
            num_categories=num_output_channels + 1,
            stage=cls.update_stage,
            mode=cls.mask_mode,
        )

    def initialize(self):
        if self.label_manager.ignore_label is not None:
            raise RuntimeError(
                f"{type(self).__name__}: datasets with an ignore label (here {self.label_manager.ignore_label}) "
                "are not supported: the attention target is undefined on ignored voxels"
            )
        super().initialize()
        self.print_to_log_file(
            f"category-guided attention: {self.guided_network().head_kind} head, rate "
            f"{self.guided_network().head.rate}, update at {self.guided_network().module_name}, "
            f"{self.guided_network().update.num_classes} categories, {self.mask_mode} masks; "
            f"attention_weight {self.loss_config.attention_weight}, inter_weight {self.loss_config.inter_weight} "
            f"({self.loss_config.inter_form}) from epoch {self.loss_config.inter_start_epoch}"
        )

    def guided_network(self) -> GuidedNetwork:
        """The ``GuidedNetwork`` inside any DDP / ``torch.compile`` wrapper."""
        network = self.network.module if self.is_ddp else self.network
        return network._orig_mod if isinstance(network, OptimizedModule) else network

    def _do_i_compile(self) -> bool:
        return os.environ.get("nnUNet_compile", "").lower() in ("true", "1", "t") and super()._do_i_compile()

    def _build_loss(self):
        return GuidedLoss(
            super()._build_loss(),
            self.guided_network(),
            regions=self.label_manager.has_regions,
            config=self.loss_config,
        )

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self.loss.inter_active = self.current_epoch >= self.loss_config.inter_start_epoch
        self._epoch_terms = []

    def train_step(self, batch: dict) -> dict:
        result = super().train_step(batch)
        self._epoch_terms.append(torch.stack(self.loss.last_terms))
        return result

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        host, attention, inter = torch.stack(self._epoch_terms).mean(0).tolist()
        self.print_to_log_file(
            f"train loss terms (unweighted means): nnU-Net {host:.4f}, attention MSE {attention:.4f}, "
            f"inter-class {inter:.4f}" + ("" if self.loss.inter_active else " (not active yet)")
        )
