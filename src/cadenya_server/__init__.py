"""A self-hostable server for the Cadenya Account API."""

__version__ = "0.1.0"
