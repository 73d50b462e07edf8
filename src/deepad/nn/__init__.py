"""Plain ``nn.Module`` building blocks.  They know nothing of training or scoring."""

from deepad.nn.mlp import MLP, AutoEncoderNet, activation_layer

__all__ = ["MLP", "AutoEncoderNet", "activation_layer"]
