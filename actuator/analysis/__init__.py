"""Offline analysis of recorded or simulated joint responses: step metrics and frequency responses."""
