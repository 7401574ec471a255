"""pytest plugin for plugin authors (registered under ``pytest11``): fixtures for testing schwarm_stream plugins."""

from __future__ import annotations
