"""Live event sources (stc_zoo.sources): the SPIF/aestream word format, UDP on 127.0.0.1, file replay,
and what bad traffic does (a counted drop or an error, never a crash or a wrong event)."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from eventfiles import SUBSET, random_events, write_nmnist
from stc_zoo import InputError, StcSNN
from stc_zoo.data import read_event_file
from stc_zoo.data.events import EVENT_DTYPE
from stc_zoo.sources import FileReplay, UdpSource
from stc_zoo.sources import spif
from stc_zoo.sources.udp import send_udp


def events_of(n: int, seed: int = 0, W: int = 34, H: int = 34, t_max: int = 300_000) -> np.ndarray:
    e = random_events(np.random.default_rng(seed), n, W, H, t_max)
    out = np.empty(len(e), dtype=EVENT_DTYPE)
    for f in ("x", "y", "t", "p"):
        out[f] = e[f]
    return out


def recording() -> np.ndarray:
    real = SUBSET / "Train" / "3" / "00008.bin"
    return read_event_file(real) if real.is_file() else events_of(5000)


# ------------------------------------------------------------------ the word format
def test_words_round_trip_with_and_without_timestamps_and_across_a_wrap():
    e = events_of(500)
    e["x"][:3], e["y"][:3] = [0, 32767, 5], [32767, 0, 7]  # the 15-bit extremes
    events, stamped = spif.Decoder().decode(spif.encode(e), arrival_us=0)
    assert stamped == 0 and np.array_equal(events, e)
    events, stamped = spif.Decoder().decode(spif.encode(e, timestamps=False), arrival_us=1234)
    assert stamped == len(e) and (events["t"] == 1234).all()
    assert np.array_equal(events[["x", "y", "p"]], e[["x", "y", "p"]])
    # A clock past 2**32 us: the words wrap, the decoder unwraps them across datagrams.
    late = events_of(200)
    late["t"] = np.sort(np.random.default_rng(1).integers(2**32 - 50_000, 2**32 + 50_000, 200))
    decoder = spif.Decoder()
    got = np.concatenate([decoder.decode(spif.encode(late[i:i + 50]), 0)[0] for i in range(0, 200, 50)])
    assert np.array_equal(got["t"], late["t"])


def test_a_datagram_mixing_stamped_and_unstamped_events_is_walked_word_by_word():
    e = events_of(6)
    data = b"".join(spif.encode(e[i:i + 1], timestamps=bool(i % 2)) for i in range(6))
    events, stamped = spif.Decoder().decode(data, arrival_us=99)
    assert stamped == 3 and np.array_equal(events[["x", "y", "p"]], e[["x", "y", "p"]])
    assert list(events["t"][1::2]) == list(e["t"][1::2]) and (events["t"][0::2] == 99).all()


def test_malformed_datagrams_are_refused_whole():
    e = events_of(4)
    assert spif.Decoder().decode(spif.encode(e)[:-1], 0) is None  # not a whole number of words
    unstamped = spif.encode(e[:1], timestamps=False)
    assert spif.Decoder().decode(unstamped + spif.encode(e[1:2])[:4], 0) is None  # its timestamp word is missing


# ------------------------------------------------------------------ UDP on 127.0.0.1
def serve(source: UdpSource, send) -> list:
    """Packets the source yields while ``send(host, port)`` runs in a thread."""
    host, port = source.address
    sender = threading.Thread(target=send, args=(host, port))
    sender.start()
    packets = list(source)
    sender.join()
    return packets


def test_a_recording_over_udp_arrives_as_the_file_holds_it():
    e = recording()
    source = UdpSource("127.0.0.1", 0, sensor_size=(34, 34), timeout_s=0.5)
    packets = serve(source, lambda h, p: send_udp(e, h, p))
    assert np.array_equal(np.concatenate([p.events for p in packets]), e)
    assert source.stats.events == len(e) and source.stats.refused() == 0
    assert all(p.received_s is not None for p in packets)


def test_decisions_on_the_udp_feed_equal_the_file_replays_bit_for_bit():
    model = StcSNN.from_pretrained("nmnist-stream-20ms")
    e = recording()

    def outputs(packets):
        session = model.stream(threshold=0.9, min_steps=2, max_steps=5)
        steps = [o for p in packets for o in session.push(p.events, now_us=p.until_us)]
        return np.stack([o.logits.numpy() for o in steps]), session.decision

    live = serve(UdpSource("127.0.0.1", 0, (34, 34), timeout_s=0.5), lambda h, p: send_udp(e, h, p, packet_events=97))
    file = list(FileReplay(e, packet_us=1000, speed=0))
    got, decided = outputs(live)
    want, expected = outputs(file)
    # The live feed says nothing of time beyond its last event, so its last partial step stays open.
    assert len(got) >= len(want) - 1 and np.array_equal(got, want[:len(got)])
    assert decided == expected and decided is not None


def test_bad_traffic_is_counted_never_passed_on():
    source = UdpSource("127.0.0.1", 0, sensor_size=(34, 34), timeout_s=0.5)
    e = events_of(20)
    e["t"] += 1000
    off = e[10:15].copy()
    off["x"] = 40  # off the 34x34 sensor
    back = e[10:15].copy()
    back["t"] = 5  # older than events already passed on

    def send(host, port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for data in (spif.encode(e[:10]), b"\x01\x02\x03", spif.encode(off), spif.encode(back),
                         spif.encode(e[10:])):
                s.sendto(data, (host, port))
                time.sleep(0.01)

    packets = serve(source, send)
    st = source.stats
    assert (st.datagrams, st.malformed, st.off_sensor, st.backwards) == (5, 1, 5, 5)
    assert st.events == 20 and st.refused() == 11 and st.host_stamped == 0
    assert np.array_equal(np.concatenate([p.events for p in packets]), e)


def test_events_without_timestamps_are_stamped_on_arrival_and_counted():
    source = UdpSource("127.0.0.1", 0, sensor_size=(34, 34), timeout_s=0.5)
    e = events_of(50)
    packets = serve(source, lambda h, p: send_udp(e, h, p, packet_events=10, timestamps=False))
    got = np.concatenate([p.events for p in packets])
    assert source.stats.host_stamped == 50 and np.array_equal(got[["x", "y", "p"]], e[["x", "y", "p"]])
    assert (np.diff(got["t"]) >= 0).all() and got["t"][0] >= 0  # microseconds since the source opened


def test_a_flood_is_bounded_and_its_drops_counted():
    source = UdpSource("127.0.0.1", 0, timeout_s=0.5, queue_datagrams=4)
    host, port = source.address
    send_udp(events_of(2000), host, port, packet_events=10)  # 200 datagrams while nobody reads
    time.sleep(0.2)
    packets = list(source)
    assert sum(len(p.events) for p in packets) == 40 and source.stats.datagrams == 4
    assert source.stats.dropped_datagrams == 196 and len(packets) == source.stats.packets == 1  # queued: one packet


AESTREAM = Path(sys.executable).parent / "aestream"  # make test installs aestream's wheel (its binary)


@pytest.mark.skipif(not AESTREAM.is_file(), reason="aestream is not installed")
def test_aestreams_own_udp_sender_arrives_as_the_file_holds_it_and_decides_as_the_replay(tmp_path):
    """aestream 0.6.4 (its own binary) sends an AEDAT 4 file over UDP with timestamps: every event arrives as
    the file holds it. Its last, partial datagram of r events carries r more repeated from before them:
    those go back in time, so the gate drops and counts them."""
    dv = pytest.importorskip("dv_processing")
    e = recording()
    writer = dv.io.MonoCameraWriter(str(tmp_path / "rec.aedat4"), dv.io.MonoCameraWriter.EventOnlyConfig("DVS", (34, 34)))
    store = dv.EventStore()
    for event in e:
        store.push_back(int(event["t"]), int(event["x"]), int(event["y"]), bool(event["p"]))
    writer.writeEvents(store)
    del writer  # closes the file
    source = UdpSource("127.0.0.1", 0, sensor_size=(34, 34), timeout_s=1.0)
    packets = serve(source, lambda h, p: subprocess.run(
        [str(AESTREAM), "input", "file", str(tmp_path / "rec.aedat4"), "output", "udp", h, str(p),
         "--include-timestamp", "true"], check=True, capture_output=True, timeout=60))
    got = np.concatenate([q.events for q in packets])
    assert np.array_equal(got, e) and source.stats.malformed == source.stats.dropped_datagrams == 0
    per_datagram = 32  # aestream's default packet size (128 bytes of words)
    assert source.stats.datagrams == -(-len(e) // per_datagram)
    assert source.stats.backwards == len(e) % per_datagram  # the last datagram's r events, repeated
    model = StcSNN.from_pretrained("nmnist-stream-20ms")
    live, replay = model.stream(threshold=0.9, min_steps=2, max_steps=5), model.stream(threshold=0.9, min_steps=2, max_steps=5)
    steps = [o for q in packets for o in live.push(q.events)]
    want = [o for q in FileReplay(e, packet_us=1000, speed=0) for o in replay.push(q.events, now_us=q.until_us)]
    assert np.array_equal(np.stack([o.logits.numpy() for o in steps]), np.stack([o.logits.numpy() for o in want])[:len(steps)])
    assert live.decision == replay.decision is not None


def test_datagrams_the_os_drops_are_counted_too():
    """A socket buffer that overflows: the kernel's drops (SO_RXQ_OVFL, Linux) are counted, so every datagram
    sent is accounted for: passed on, dropped from the full queue, or dropped by the OS."""
    source = UdpSource("127.0.0.1", 0, timeout_s=0.5, queue_datagrams=8, socket_buffer=2048)
    host, port = source.address
    e = events_of(3000)
    sent = send_udp(e, host, port, packet_events=2)  # 1,500 datagrams as fast as Python sends them
    time.sleep(0.3)
    send_udp(e[-1:], host, port)  # a late one carries the kernel's count
    packets = list(source)
    st = source.stats
    assert st.os_dropped > 0 and st.datagrams + st.dropped_datagrams + st.os_dropped == sent + 1
    assert sum(len(p.events) for p in packets) == st.events


def test_a_silent_sender_ends_the_stream_cleanly():
    begin = time.perf_counter()
    source = UdpSource("127.0.0.1", 0, timeout_s=0.2, wait_s=0.3)
    assert list(source) == [] and time.perf_counter() - begin < 5
    taken = UdpSource("127.0.0.1", 0)
    with pytest.raises(InputError, match="cannot listen there"):
        UdpSource(*taken.address)  # the port is in use: refused, named
    taken.close()


def test_file_replay_paces_packets_and_says_the_time_reached():
    e = events_of(300, t_max=50_000)
    packets = list(FileReplay(e, packet_us=10_000, speed=0))
    assert np.array_equal(np.concatenate([p.events for p in packets]), e)
    assert [p.until_us for p in packets] == list(range(int(e["t"][0]) + 10_000, int(e["t"][-1]) + 10_001, 10_000))
    begin = time.perf_counter()
    list(FileReplay(e, packet_us=10_000, speed=1.0))  # 50 ms of recording at real time
    assert time.perf_counter() - begin >= 0.04


# ------------------------------------------------------------------ the command line
def udp_bound(port: int) -> bool:
    """Whether a socket holds UDP ``port`` (Linux's socket table: reading it cannot take the port from the
    receiver, as a probe that binds it for a moment could)."""
    table = Path("/proc/net/udp")
    if table.is_file():
        return any(line.split()[1].endswith(f":{port:04X}") for line in table.read_text().splitlines()[1:])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # elsewhere: try to bind it
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_until_bound(port: int, hang_guard_s: float = 300.0) -> None:
    """Return once the receiver holds UDP ``port`` (it binds once warmed up, right before it says it listens):
    an event to wait for, not a guess at how long the warm-up takes."""
    give_up = time.monotonic() + hang_guard_s
    while not udp_bound(port):
        if time.monotonic() > give_up:
            raise AssertionError(f"nothing bound 127.0.0.1:{port} within {hang_guard_s:g} s")
        time.sleep(0.01)


def test_stream_command_takes_a_live_udp_feed_and_send_sends_one(tmp_path, capsys):
    from stc_zoo.cli import main

    path = tmp_path / "rec.bin"
    write_nmnist(path, random_events(np.random.default_rng(4), 6000, 34, 34, 300_000))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # a free port, released for the receiver

    def sender():
        wait_until_bound(port)  # the receiver binds once warmed up: it then takes every datagram
        main(["send", str(path), "--udp", f"127.0.0.1:{port}", "--speed", "0"])

    thread = threading.Thread(target=sender)
    thread.start()
    code = main(["stream", "nmnist-stream-20ms", "--udp", f"127.0.0.1:{port}", "--timeout", "1", "--wait", "30",
                 "--threshold", "0.05", "--min-steps", "2"])
    thread.join()
    lines = capsys.readouterr().out.strip().splitlines()
    sent = json.loads(next(line for line in lines if line.startswith('{"file"')))
    summary = json.loads(lines[-1])
    assert code == 0 and sent["events"] == 6000 and summary["events"] == 6000 and summary["datagrams"] == sent["datagrams"]
    assert summary["steps"] >= 14 and summary["decision"] is not None and summary["refused_packets"] == 0
    assert summary["median_lag_ms"] is not None
    assert main(["stream", "nmnist-stream-20ms"]) == 2  # neither a file nor --udp
    assert main(["stream", "nmnist-stream-20ms", "--udp", "localhost:http"]) == 2  # not a port
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_a_live_feed_from_a_larger_camera_is_fitted_as_a_file_is(tmp_path, capsys):
    """--fit crop --sensor 128x128 on a live feed: the camera's events are taken (none refused as off the
    model's 34x34 sensor) and give the decision the same file gives replayed with the same fit."""
    from stc_zoo.cli import main

    path = tmp_path / "dvs128.npy"
    np.save(path, events_of(20_000, seed=5, W=128, H=128))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fit = ["--fit", "crop", "--sensor", "128x128", "--threshold", "0.05", "--min-steps", "3"]  # decides at 60 ms
    thread = threading.Thread(target=lambda: (wait_until_bound(port), main(["send", str(path), "--udp",
                                                                             f"127.0.0.1:{port}", "--speed", "0"])))
    thread.start()
    code = main(["stream", "nmnist-stream-20ms", "--udp", f"127.0.0.1:{port}", "--timeout", "1", "--wait", "30", *fit])
    thread.join()
    live = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and live["events"] == 20_000 and live["off_sensor_events"] == 0 and live["steps"] >= 14
    assert main(["stream", "nmnist-stream-20ms", str(path), "--speed", "0", *fit]) == 0
    replayed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert live["decision"] == replayed["decision"] is not None
    assert live["recording_ms_at_decision"] == replayed["recording_ms_at_decision"] == 60.0


# ------------------------------------------------------------------ DV streams (dv-processing)
# Each DV test runs in a fresh interpreter: in one pytest process, dv-processing's network writer and reader
# hung after the UDP tests above had run (not seen in a fresh process; not understood yet).
DV_ROUND_TRIP = """
import json, sys
import numpy as np
sys.path.insert(0, "tests")
from test_sources import recording
from stc_zoo import StcSNN
from stc_zoo.sources import DvSource, FileReplay
from stc_zoo.sources.dv import serve_dv

e, port = recording(), int(sys.argv[1])
writer, server = serve_dv(e, port, (34, 34), batch_events=700)  # listening before the reader connects
source = DvSource.network("127.0.0.1", port, timeout_s=0.5)
packets = list(source)
server.join()
model = StcSNN.from_pretrained("nmnist-stream-20ms")

def outputs(packets):
    session = model.stream(threshold=0.9, min_steps=2, max_steps=5)
    steps = [o for p in packets for o in session.push(p.events, now_us=p.until_us)]
    return np.stack([o.logits.numpy() for o in steps]), session.decision

got, decided = outputs(packets)
want, expected = outputs(FileReplay(e, packet_us=1000, speed=0))
print(json.dumps({"sensor": list(source.sensor_size), "refused": source.stats.refused(),
                  "equal_events": bool(np.array_equal(np.concatenate([p.events for p in packets]), e)),
                  "steps": [len(got), len(want)], "equal_logits": bool(np.array_equal(got, want[:len(got)])),
                  "same_decision": decided == expected and decided is not None}))
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_fresh_python(code: str, *args: str) -> dict:
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("dv_processing", reason="dv-processing is a test dependency (pip install dv-processing)")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_recording_from_dv_processings_network_writer_gives_the_file_replays_decisions():
    got = in_fresh_python(DV_ROUND_TRIP, str(free_port()))
    assert got["sensor"] == [34, 34] and got["refused"] == 0 and got["equal_events"]
    assert got["steps"][0] >= got["steps"][1] - 1 and got["equal_logits"] and got["same_decision"]


def test_stream_command_reads_a_dv_network_stream():
    code = """
import json, sys
sys.path.insert(0, "tests")
from test_sources import recording
from stc_zoo.cli import main
from stc_zoo.sources.dv import serve_dv
from stc_zoo.errors import InputError
from stc_zoo.sources import DvSource

port = int(sys.argv[1])
try:
    DvSource.network("127.0.0.1", port)
    nothing = "connected"
except InputError as err:
    nothing = str(err)
writer, server = serve_dv(recording(), port, (34, 34))
code = main(["stream", "nmnist-stream-20ms", "--dv", f"tcp://127.0.0.1:{port}", "--timeout", "0.5"])
print(json.dumps({"code": code, "nothing_there": nothing}))
"""
    got = in_fresh_python(code, str(free_port()))
    assert got["code"] == 0 and "no DV stream there" in got["nothing_there"]


@pytest.mark.parametrize("argv, message", [
    (["--packet-events", "0"], "packet_events must be an integer in 1..8188"),
    (["--packet-events", "9000"], "packet_events must be an integer in 1..8188"),
    (["--packet-events", "9000", "--no-timestamps"], None),  # 4 bytes an event without timestamps: fits
    (["--speed", "-1"], "speed must be a finite number >= 0"),
    (["--udp", "127.0.0.1:0"], "expected HOST:PORT with a port in 1..65535"),
])
def test_send_refuses_what_it_cannot_send_with_exit_2(tmp_path, capsys, argv, message):
    from stc_zoo.cli import main as cli

    path = tmp_path / "rec.npy"
    np.save(path, events_of(200))
    udp = [] if "--udp" in argv else ["--udp", "127.0.0.1:9"]  # the discard port: nothing listens, UDP does not mind
    code = cli(["send", str(path), *udp, *argv])
    err = capsys.readouterr().err
    assert (code, message in err if message else "error" not in err) == (0 if message is None else 2, True), err


def test_stream_from_a_camera_that_is_not_there_exits_2_naming_it(capsys):
    import dv_processing as dv

    from stc_zoo.cli import main

    attached = [str(d) for d in dv.io.camera.discover()]
    if attached:
        pytest.skip(f"an iniVation camera is attached here ({attached}): its absence cannot be tested")
    for argv in (["--camera"], ["--camera", "DXA00093"]):
        assert main(["stream", "nmnist-stream-20ms", *argv]) == 2
        assert "no iniVation camera found on USB" in capsys.readouterr().err
