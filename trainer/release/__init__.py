"""From trained weights to a model directory: export, calibration, variants, manifest, promotion."""
