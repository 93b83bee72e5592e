"""UniSegDiff: a Lightning framework for staged diffusion lesion segmentation.

Subpackages: ``diffusion`` (stateless math), ``nets``, ``data``, ``models``, ``cli``.
"""

__version__ = "0.1.0"
