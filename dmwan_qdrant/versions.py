"""Installed versions of the libraries a run depends on (no heavy imports)."""

from __future__ import annotations


def installed_versions(distributions: tuple[str, ...]) -> dict[str, str | None]:
    """The installed version of each distribution (None: not installed)."""
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for dist in distributions:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out
