"""``python -m bench``: measure the classifier worker side by side with the raw model and the seed's way.

The worker is a black box driven through its CLI (``python -m classifier_worker.cli``), so the
figures stay valid while its internals change. See ``docs/performance.md``.
"""
