"""``python -m gworkers`` is ``gworkers-run``."""

from .cli import main

main()
