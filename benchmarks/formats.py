"""Reading speed of the candidate libraries for each camera format, on files their writers produce.

    .venv/bin/python benchmarks/formats.py [--events 1000000]

No real AEDAT 4 / EVT / HDF5 recording is available on the machines this runs on, so each file is
written by the vendor's or the reader's own writer (dv-processing, expelliarmus, h5py) from the
same random events; the table is read speed in million events per second (median of 5 reads).
faery is compared when installed (pip install faery); evlib was not (see docs/FORMATS.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, reps=5) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times) / 1e6


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    args = p.parse_args(argv)
    import aedat
    import dv_processing as dv
    import expelliarmus
    import h5py
    try:
        import faery  # optional: a candidate compared, not a dependency
    except ImportError:
        faery = None

    from stc_zoo.data import read_event_file

    rng = np.random.default_rng(0)
    n = args.events
    x, y = rng.integers(0, 346, n), rng.integers(0, 260, n)
    t, pol = np.sort(rng.integers(0, 10 * n, n)).astype(np.int64), rng.integers(0, 2, n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        writer = dv.io.MonoCameraWriter(str(tmp / "a.aedat4"), dv.io.MonoCameraWriter.EventOnlyConfig("t", (346, 260)))
        store = dv.EventStore()
        for i in range(n):
            store.push_back(int(t[i]), int(x[i]), int(y[i]), bool(pol[i]))
        writer.writeEvents(store)
        del writer

        def with_aedat():
            return sum(len(pk["events"]) for pk in aedat.Decoder(str(tmp / "a.aedat4")) if "events" in pk)

        def with_dv():
            rec, count = dv.io.MonoCameraRecording(str(tmp / "a.aedat4")), 0
            while (batch := rec.getNextEventBatch()) is not None:
                count += len(batch.numpy())
            return count

        def with_faery(path):
            return sum(len(packet) for packet in faery.events_stream_from_file(str(path)))

        rows += [("AEDAT 4", "aedat 2.3 (chosen)", timed(with_aedat)), ("AEDAT 4", "dv-processing 2.0", timed(with_dv)),
                 *([("AEDAT 4", "faery 0.7", timed(lambda: with_faery(tmp / "a.aedat4")))] if faery else []),
                 ("AEDAT 4", "stc_zoo read_event_file (aedat + checks)",
                  timed(lambda: len(read_event_file(tmp / "a.aedat4"))))]
        arr = np.zeros(n, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
        arr["t"], arr["x"], arr["y"], arr["p"] = t, x, y, pol
        for enc, name in (("evt2", "e2.raw"), ("evt3", "e3.raw"), ("dat", "d.dat")):
            expelliarmus.Wizard(encoding=enc).save(str(tmp / name), arr)
            rows.append((enc.upper(), "expelliarmus 1.1 (chosen)",
                         timed(lambda: len(expelliarmus.Wizard(encoding=enc, fpath=str(tmp / name)).read()))))
            if faery and enc != "evt2":  # faery reads EVT 3 and DAT (its docs), not EVT 2 raw
                try:
                    rows.append((enc.upper(), "faery 0.7", timed(lambda: with_faery(tmp / name))))
                except Exception as err:  # noqa: BLE001 - recorded, not hidden
                    rows.append((enc.upper(), f"faery 0.7: failed ({type(err).__name__}: {str(err)[:60]})", 0.0))
        with h5py.File(tmp / "e.h5", "w") as f:
            f["events"] = arr
        rows.append(("HDF5 (compound)", "h5py 3", timed(lambda: len(read_event_file(tmp / "e.h5")))))
    print(f"{n:,} events per file; million events read per second (median of 5)\n")
    print("| format | reader | Mev/s |\n|---|---|---:|")
    for fmt, reader, speed in rows:
        print(f"| {fmt} | {reader} | {speed:.1f} |")


if __name__ == "__main__":
    main()
