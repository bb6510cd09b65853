"""Test-wide environment; it must be set before Triton or huggingface_hub is imported.

* Triton kernels run in Triton's CPU interpreter. On a GPU machine,
  ``STC_TEST_CUDA=1 pytest tests/test_kernels.py`` runs the same parity tests on the GPU instead.
* huggingface_hub is offline with an empty cache of its own, so no test reaches the real Hub or
  a developer's cache. The Hub tests (test_hub.py) run their clients in subprocesses pointed at a
  local server through HF_ENDPOINT.
"""

import os
import tempfile

if os.environ.get("STC_TEST_CUDA") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="stc-zoo-test-hf-")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_ENDPOINT", None)
