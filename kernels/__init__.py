"""Ops of the hot path (installed as ``stc_zoo.kernels``).

Each op has a pure-PyTorch reference (``*_ref.py``: the training path on a CPU, and the oracle
every other kernel is tested against), a Triton kernel for CUDA (``*_triton.py``) and a Numba
kernel for CPU inference (``*_numba.py``). ``ops.py`` chooses between them
(``backend="auto" | "triton" | "numba" | "torch"``) and registers the Triton kernels with
``torch.library``. ``bench.py`` times the kernels; ``BENCHMARKS.md`` records the runs.
"""
