"""Encoder and decoder bodies (MLP for vectors, convolutional for images)."""

from vaekit.nn.bodies import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, conv_output_sizes

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "conv_output_sizes"]
