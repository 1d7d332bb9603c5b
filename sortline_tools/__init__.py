"""Tools for people who run a line: the ``sortline`` command (``sortline tail``)."""
