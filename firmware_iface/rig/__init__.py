"""The headless test rig: sequences (TOML) run on joints over a bus, with recordings, results and reports."""
