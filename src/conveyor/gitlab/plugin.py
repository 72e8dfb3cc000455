"""The built-in gitlab plugin."""

from __future__ import annotations
