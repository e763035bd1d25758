"""The package version, single-sourced here (hatchling reads it; nothing is imported), and the
command's name in its messages."""

__version__ = "0.1.0"
PROG = "gworkers-run"
