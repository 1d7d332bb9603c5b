"""Labelled data: the folder layout, the deterministic splits, image reading, caching, augmentation."""
