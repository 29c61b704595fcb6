"""Analysis tools: size and compute counts (receptive-field analysis comes later)."""

from .complexity import count_parameters, profile

__all__ = ["count_parameters", "profile"]
