"""Run training/train.py, but SIGKILL the process inside its N-th atomic write of a matching file.

    python tests/kill_during_write.py PATTERN N MODE train.py-arguments...

PATTERN is matched (fnmatch) against the name of the file an ``os.replace`` is about to put in
place; MODE ``whole`` dies with the temp file written but not renamed, ``partial`` truncates the
temp file to half first (a write cut short). Used by tests/test_reliability.py.
"""

import fnmatch
import os
import signal
import sys
from pathlib import Path

pattern, nth, mode, *argv = sys.argv[1:]
from stc_zoo import training as train

real_replace, seen = os.replace, []


def replace(src, dst):
    if fnmatch.fnmatch(Path(dst).name, pattern):
        seen.append(dst)
        if len(seen) == int(nth):
            if mode == "partial":
                os.truncate(src, os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)


os.replace = replace
train.main(argv)
