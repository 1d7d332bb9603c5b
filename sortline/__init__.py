"""Sortline shared contract: labels, cascade logic, message schema v1, topology names, settings.

This package is imported by every process (camera agent, classifier worker, trainer), so it keeps
its imports light: pydantic and the standard library only. Broker-facing helpers that need pika
live in :mod:`sortline.topology` and import it lazily.
"""

CONTRACT_VERSION = 1
