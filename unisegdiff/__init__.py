"""UniSegDiff: a Lightning framework for staged diffusion lesion segmentation.

Subpackages: ``diffusion`` (stateless math), ``nets``, ``data``, ``models``, ``cli``.
"""

import os

# OpenMP threads that busy-wait make CPU training 10-20x slower as soon as another process (a data
# worker, a second job) shares the cores; passive waiting costs nothing when the machine is idle.
# Set before torch is imported when the package is imported first (the CLI and the Makefile do so).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
