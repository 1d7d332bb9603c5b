"""Sortline classifier worker: frames in, one sorting decision per frame out."""
