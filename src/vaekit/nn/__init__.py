"""Encoder and decoder bodies (MLP for vectors, convolutional for images)."""

from vaekit.nn.bodies import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, conv_output_sizes
from vaekit.nn.grid import ConvGridDecoder, ConvGridEncoder
from vaekit.nn.gated import GatedDense, GatedMLPDecoder, GatedMLPEncoder

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "conv_output_sizes", "ConvGridEncoder", "ConvGridDecoder",
           "GatedDense", "GatedMLPEncoder", "GatedMLPDecoder"]
