"""The apg version: one place, importable from every stage without importing the package face."""

__version__ = "0.1.0"
