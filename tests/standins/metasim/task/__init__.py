"""STAND-IN for ``metasim.task`` (see ``metasim/__init__.py``)."""
