"""Triton kernels run in Triton's CPU interpreter here; it must be switched on before Triton is imported.

On a GPU machine, ``STC_TEST_CUDA=1 pytest tests/test_kernels.py`` runs the same parity tests
on the GPU instead.
"""

import os

if os.environ.get("STC_TEST_CUDA") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")
