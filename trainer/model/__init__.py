"""The network: the pretrained EfficientNet-Lite0 backbone and the served two-head cascade module."""
