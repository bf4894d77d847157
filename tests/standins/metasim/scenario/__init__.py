"""STAND-IN for ``metasim.scenario`` (see ``metasim/__init__.py``)."""
