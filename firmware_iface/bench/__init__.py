"""Benchmarks behind ``jointkit bench``: each returns a dict of figures measured in one run."""
