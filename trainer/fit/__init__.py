"""Fitting the network: fine-tuning, head training on frozen features, quantization-aware steps."""
