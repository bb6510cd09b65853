"""SIGKILL ``save_pretrained`` at every file-system step of a save over a good checkpoint; report what each kill left.

    python tests/kill_during_save.py FOLDER [two-renames]

Forks once per kill (torch is imported once): the child saves model B over FOLDER, which holds model A,
and kills itself at the k-th file-system event of the save (Python's audit events: open, rename, link,
remove, mkdir, rmtree, the ctypes call of the swap), for every k from the first to one past the last, so
every step is hit by construction, whatever the machine's load. The parent then loads FOLDER and records
whether it holds A, B or neither. ``two-renames``: the swap's fallback where the kernel has no
RENAME_EXCHANGE. Prints one JSON line: {"A": n, "B": n, "neither": [reasons], "events": N, "parked": n}
(parked: kills that left the folder missing and the old one at ``.<name>.previous``, which loading read).
"""

import json
import os
import shutil
import signal
import sys
import warnings
from pathlib import Path

import torch

from stc_zoo import StcConfig, StcSNN, atomic
from stc_zoo.hub.provenance import digest

folder, mode = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "exchange")
if mode == "two-renames":
    atomic._exchange = lambda a, b: False
config = StcConfig().replace(sensor_size=(34, 34), num_classes=3, T=2, ratio=2, channels=(8,), hidden=16)
torch.manual_seed(0)
a, b = StcSNN(config), StcSNN(config)
a.save_pretrained(folder)
EVENTS = ("open", "os.rename", "os.link", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "shutil.copyfile",
          "tempfile.mkdtemp", "tempfile.mkstemp", "ctypes.call_function")


def save_in_child(kill_at: int | None) -> int:
    """Save B over FOLDER in a forked child, killed at its ``kill_at``-th event (None: never); the events the
    child saw, sent back through a pipe when it finishes."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        count = 0

        def hook(event, args):
            nonlocal count
            if event in EVENTS and (event != "open" or _writes(args)):
                count += 1
                if count == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

        sys.addaudithook(hook)
        b.save_pretrained(folder)
        os.write(write, str(count).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    text = os.read(read, 64).decode()
    os.close(read)
    return int(text) if text else -1


def _writes(args) -> bool:
    """An ``open`` that can change a file (a mode with w, a, x or +, or os.open's write flags)."""
    mode, flags = (args[1], args[2]) if len(args) >= 3 else (args[1] if len(args) > 1 else "r", 0)
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


events = save_in_child(None)  # how many events a whole save has (B is then at FOLDER: back to A)
shutil.rmtree(folder)
a.save_pretrained(folder)
digests = {digest(a.network): "A", digest(b.network): "B"}
seen = {"A": 0, "B": 0, "neither": [], "events": events, "parked": 0}
for k in range(1, events + 2):
    save_in_child(k)
    which = None
    seen["parked"] += atomic.interrupted_swap(folder) is not None  # killed between the fallback's two renames
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the interrupted-swap note
            which = digests.get(digest(StcSNN.from_pretrained(folder).network), "other weights")
        seen[which] = seen.get(which, 0) + 1
    except Exception as err:  # noqa: BLE001 - the report says what it was
        seen["neither"].append(f"kill at event {k}: {type(err).__name__}: {err}")
    if which == "B" or not folder.exists():  # back to A for the next kill
        shutil.rmtree(folder, ignore_errors=True)
        a.save_pretrained(folder)
print(json.dumps(seen))
