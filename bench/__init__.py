"""gworkers' own benchmark: gworkers against its peers and the limit servers (see README.md)."""
