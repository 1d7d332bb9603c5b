"""Offline trainer: labelled folders -> EfficientNet-Lite0 with two heads -> ONNX + manifest.

``trainer train`` fine-tunes the pretrained backbone by default (``--mode heads`` trains only the
heads on the frozen backbone), calibrates the cascade's thresholds on a calibration subset through
the exported file, scores it on the validation split, builds int8 and fp16 variants and writes the
model directory the worker serves. Subpackages by job: ``data`` (layout, splits, reading, caching,
augmentation), ``model`` (backbone, cascade module, ONNX export), ``fit`` (fine-tuning, heads,
quantization-aware steps), ``release`` (export check, thresholds, variants, manifest, promotion),
``evaluation`` (scoring as served, figures, report) and ``pipelines`` (``trainer train``); flags in
``settings``, the console script in ``cli``. Images are read and scored through
:mod:`sortline_runtime`, the runtime the worker serves with.
"""
