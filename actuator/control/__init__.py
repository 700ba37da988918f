"""Control-side signal processing: discrete filters and reference trajectories."""
