"""Implementations of the core ``clicksam`` sub-commands."""
