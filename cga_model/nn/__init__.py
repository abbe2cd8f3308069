"""The network: ModelConfig, CGAUNet, its blocks and attention, the drop-in wrapper, losses and checkpoints."""
