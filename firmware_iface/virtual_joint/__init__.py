"""The virtual joint: the simulated joint with its firmware, as a node on a python-can bus."""
