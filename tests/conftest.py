"""Test-wide environment; it must be set before Triton or huggingface_hub is imported.

* Triton kernels run in Triton's CPU interpreter. On a GPU machine,
  ``STC_TEST_CUDA=1 pytest tests/test_kernels.py`` runs the same parity tests on the GPU instead.
* ``backend="auto"`` runs the Numba CPU kernels, compiling them on first use, in every test and its
  subprocesses, the one-shot commands (``stc-zoo predict``, ``show``, ``stream FILE``) too
  (``STC_ZOO_COMPILE=1``), whatever the state of Numba's disk cache: a fresh clone's first run behaves as
  later ones. tests/test_fast_cpu.py checks those commands' default (a cold cache: the reference) without it.
* huggingface_hub is offline with an empty cache of its own, so no test reaches the real Hub or
  a developer's cache. The Hub tests (test_hub.py) run their clients in subprocesses pointed at a
  local server through HF_ENDPOINT.
"""

import os
import tempfile

if os.environ.get("STC_TEST_CUDA") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")

os.environ["STC_ZOO_COMPILE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="stc-zoo-test-hf-")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_ENDPOINT", None)


import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core (make test): one torch thread each, not two
    import torch  # noqa: E402

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def warmed_numba_cache(tmp_path_factory):
    """A ``NUMBA_CACHE_DIR`` that ``stc-zoo warmup nmnist-t4`` filled from empty (an image's build step)."""
    cache = tmp_path_factory.mktemp("numba-warmed")
    done = subprocess.run([sys.executable, "-m", "stc_zoo.cli", "warmup", "nmnist-t4"], timeout=600, text=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, capture_output=True)
    assert done.returncode == 0 and "warm: nmnist-t4" in done.stdout, done.stderr[-2000:]
    return cache
