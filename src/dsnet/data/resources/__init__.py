"""Packaged data files (the ImageNet-1k class index)."""
