"""Old path of ``cga_model.nn.dropin`` (kept as an alias; see docs/architecture.md)."""
from .nn.dropin import CategoryGuidedAttention, GuidedLosses, GuidedOutput, guided_attention_losses  # noqa: F401
