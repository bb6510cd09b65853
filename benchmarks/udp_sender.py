"""The sender process of benchmarks/live.py: plays pre-encoded datagrams at 1x their timestamps and logs
when each left. Imports numpy alone, so it starts in a fraction of a second.

    python benchmarks/udp_sender.py JOB.json

JOB: {"feeds": [{"words": .npy of uint32 words, "bounds": .npy of int64 [datagrams + 1] word offsets,
"times": .npy of int64 [datagrams, 2] first and last event time, "port": int, "log": .npy to write}]}.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import numpy as np

LOG_DTYPE = np.dtype([("first_t", "<i8"), ("last_t", "<i8"), ("sent_s", "<f8")])


def main(job_path: str) -> None:
    feeds = json.loads(open(job_path).read())["feeds"]
    payloads, times, schedule = [], [], []
    for f, feed in enumerate(feeds):
        words = np.load(feed["words"], allow_pickle=False)
        bounds = np.load(feed["bounds"], allow_pickle=False)
        t = np.load(feed["times"], allow_pickle=False)
        payloads.append([words[bounds[k]:bounds[k + 1]].tobytes() for k in range(len(bounds) - 1)])
        times.append(t)
        schedule += [((int(t[k, 1]) - int(t[0, 0])) / 1e6, f, k) for k in range(len(t))]
    schedule.sort()
    logs = [np.zeros(len(t), dtype=LOG_DTYPE) for t in times]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.perf_counter()  # time.perf_counter is CLOCK_MONOTONIC: the receiver's clock too
    for due, f, k in schedule:
        wait = start + due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sock.sendto(payloads[f][k], ("127.0.0.1", feeds[f]["port"]))
        logs[f][k] = (times[f][k, 0], times[f][k, 1], time.perf_counter())
    sock.close()
    for feed, log in zip(feeds, logs):
        np.save(feed["log"], log)


if __name__ == "__main__":
    main(sys.argv[1])
