"""The named choices of the model and loss options, in a module that imports nothing.

``ModelConfig``, ``LossConfig``, the building blocks and the ``cga`` flags all take their choices
from here, so that ``cga --help`` lists them without loading torch or the kernels.
"""

#: Normalisations of the residual blocks: GroupNorm (released code), BatchNorm (Table 1, default), InstanceNorm,
#: SyncBatchNorm.
NORMS = ("gn", "bn", "in", "sync_bn")
#: Attention down-sampling rates (paper Table 3) -> the strides of the attention conv path.
ATTENTION_STRIDES = {8: (2, 2, 2), 4: (1, 2, 2), 2: (1, 1, 2)}
#: Masks of the intra-class update: argmax of the attention (released code) or softmax weights
#: (the same tuple as ``cga_kernels.modules.MASK_MODES``, the op's contract; a test keeps them equal).
MASK_MODES = ("hard", "soft")
#: Attention paths: three convolutions of the image with nothing between them (released code), or with a ReLU
#: after the first two (a non-linear map of the image), or a 1x1 convolution of the feature map the SAM updates.
ATTENTION_PATHS = ("linear", "relu", "features")
#: Segmentation losses: Dice + cross-entropy (default), the paper's softmax Dice over the tumour classes.
SEGMENTATION_LOSSES = ("dice_ce", "dice")
#: Attention losses: the paper's MSE against the one-hot guided map, or Dice + cross-entropy on the attention logits
#: (the segmentation loss's form, so the rare tumour classes weigh as much as the background).
ATTENTION_LOSSES = ("mse", "dice_ce")
#: Inter-class loss forms (``cga_kernels.inter_class_loss``): the paper's formula, the released code's.
INTER_FORMS = ("paper", "official")
#: Arithmetic of ``cga predict``: bfloat16 where the device computes it natively (auto), float32, bfloat16.
PRECISIONS = ("auto", "float32", "bfloat16")
#: Fields the SAM pools prototypes over at inference (``cga_model.nn.prototype_field``): the default window around
#: each voxel (the default of ``cga predict``), tiles the size of the training crop, or each network input (the
#: paper's form).
PROTOTYPE_FIELDS = ("window", "crop", "input")
