"""Scoring a model directory as the worker serves it, and the figures, tables and report about it."""
