"""STAND-IN for ``metasim.sim`` (see ``metasim/__init__.py``)."""
