"""Offline trainer: labelled folders -> frozen EfficientNet-Lite0 features -> two heads -> ONNX + manifest."""
