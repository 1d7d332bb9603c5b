"""The serving runtime: what turns an image and a model directory into cascade decisions.

Shared by the classifier worker (which serves) and the trainer (which calibrates and evaluates the
files it exports), so both see the same pixels, the same ONNX Runtime session and the same
decisions. Depends on numpy, OpenCV, ONNX Runtime and the :mod:`sortline` contract only; it never
imports a service (classifier_worker, camera_agent, trainer) nor the broker client (see
docs/architecture.md).
"""
