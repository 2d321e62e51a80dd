"""The ``graftwatch`` command: thin parsers over the Python API."""
