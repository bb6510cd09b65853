"""Ops of the hot path (installed as ``stc_zoo.kernels``).

Each op has a pure-PyTorch reference (``*_ref.py``: the CPU path, and the oracle every fused
kernel is tested against) and a Triton kernel beside it (``*_triton.py``). ``ops.py`` chooses
between them (``backend="auto" | "triton" | "torch"``) and registers the kernels with
``torch.library``. ``bench.py`` times them; ``BENCHMARKS.md`` records the runs.
"""
