"""Control kernels shared by firmware, host and batch loops: PID, discrete filters, reference trajectories."""

from actuator.kernel_cache import configure

configure()  # before any kernel is decorated: a cache folder per version of the kernel sources
