"""Ops of the hot path (installed as ``stc_zoo.kernels``).

Each op has a pure-PyTorch reference here (``*_ref.py``): the CPU path, and the oracle every
fused kernel is tested against.
"""
