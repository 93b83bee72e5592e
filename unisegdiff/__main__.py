"""Entry point for ``python -m unisegdiff``.

Delegates to :func:`unisegdiff.cli.main`.
"""

from unisegdiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
