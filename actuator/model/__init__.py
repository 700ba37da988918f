"""The joint model: the Numba kernels of the motor, reducer, sensors and their composition."""

from actuator.kernel_cache import configure

configure()  # before any kernel is decorated: a cache folder per version of the kernel sources
