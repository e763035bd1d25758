"""The package version, single-sourced here (hatchling reads it; nothing is imported)."""

__version__ = "0.1.0"
