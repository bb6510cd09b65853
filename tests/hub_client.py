"""Subprocess side of the Hub tests: ``python hub_client.py '{"source": ..., "calls": n, "kwargs": {...}}'``.

Calls ``StcSNN.from_pretrained`` ``calls`` times and prints one JSON line: the digest of the
loaded weights, the folder they came from, every warning logged and the seconds the calls took; or the
error's type and message.
"""

import hashlib
import json
import logging
import sys
import time

from stc_zoo import StcSNN


def digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def main() -> None:
    request = json.loads(sys.argv[1])
    logs = Collect()
    logging.getLogger("stc_zoo").addHandler(logs)
    start = time.perf_counter()
    try:
        for _ in range(request["calls"]):
            model = StcSNN.from_pretrained(request["source"], **request["kwargs"])
        result = {"ok": True, "digest": digest(model), "folder": str(model.checkpoint_folder)}
    except Exception as err:  # report any failure to the test, which decides what was expected
        result = {"ok": False, "error": type(err).__name__, "message": str(err)}
    result["seconds"] = time.perf_counter() - start
    result["warnings"] = logs.messages
    print(json.dumps(result))


if __name__ == "__main__":
    main()
