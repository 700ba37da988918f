"""Control kernels shared by firmware, host and batch loops: PID, discrete filters, reference trajectories."""
