"""SIGKILL ``save_pretrained`` at random moments over a good checkpoint, many times; report what each kill left.

    python tests/kill_during_save.py FOLDER KILLS

Forks once per kill (torch is imported once): the child saves model B over FOLDER, which holds model A,
and is killed after a random delay within the save's duration; the parent then loads FOLDER and records
whether it holds A, B or neither. Prints one JSON line: {"A": n, "B": n, "neither": [reasons]}.
"""

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from stc_zoo import StcConfig, StcSNN
from stc_zoo.hub.provenance import digest

folder, kills = Path(sys.argv[1]), int(sys.argv[2])
config = StcConfig().replace(sensor_size=(34, 34), num_classes=3, T=2, ratio=2, channels=(8,), hidden=16)
torch.manual_seed(0)
a, b = StcSNN(config), StcSNN(config)
a.save_pretrained(folder)


def forked_save_s() -> float:
    """How long a forked child takes to save B, as the killed children will (pages copied on write, the
    machine's load as it is now): measured in a child and sent back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        start = time.perf_counter()
        b.save_pretrained(folder.with_name("timing"))
        os.write(write, str(time.perf_counter() - start).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    seconds = float(os.read(read, 64).decode())
    os.close(read)
    return seconds


duration = max(forked_save_s() for _ in range(3))
digests = {digest(a.network): "A", digest(b.network): "B"}
seen = {"A": 0, "B": 0, "neither": [], "save_ms": round(duration * 1e3, 2)}
rng = random.Random(0)
for i in range(kills):
    if i % 10 == 0:  # the load may have changed: measure again
        duration = max(duration * 0.5, forked_save_s())
    delay = rng.uniform(0, duration * 1.5)  # before, during and after the swap
    pid = os.fork()
    if pid == 0:  # the child: save B, killed part-way by the timer
        signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGKILL))
        signal.setitimer(signal.ITIMER_REAL, max(delay, 1e-6))
        b.save_pretrained(folder)
        os._exit(0)
    os.waitpid(pid, 0)
    which = None
    try:
        which = digests.get(digest(StcSNN.from_pretrained(folder).network), "other weights")
        seen[which] = seen.get(which, 0) + 1
    except Exception as err:  # noqa: BLE001 - the report says what it was
        seen["neither"].append(f"{type(err).__name__}: {err}")
    if which == "B":  # back to A for the next kill
        shutil.rmtree(folder)
        a.save_pretrained(folder)
print(json.dumps(seen))
