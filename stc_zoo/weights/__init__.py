"""Checkpoints bundled with the package (trained on real data; each folder holds its model card)."""
