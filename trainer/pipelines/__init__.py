"""Whole jobs that chain the other subpackages: ``trainer train``."""
