"""ragsite: chat with a book."""

__version__ = "0.1.0"
