"""The package version, in a module of its own so run-time code can name it without the package root."""

from __future__ import annotations

__version__ = "0.1.0"
