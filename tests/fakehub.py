"""A misbehaving Hub on 127.0.0.1 for the transfer tests: it speaks the Hub's API (repo info, tree,
HEAD and GET of ``resolve/``) from a folder, and can trickle, cut, inflate or garble its answers.

olah (hubserver.py) is a faithful Hub; this one is deliberately not: each ``mode`` is one way a
real server or network fails.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"
MODES = ("ok", "trickle", "huge", "cut", "garbled-api", "dies-after-api")


class FakeHub:
    """``FakeHub(folder, mode).start()``; ``endpoint`` for HF_ENDPOINT; any repo id serves ``folder``."""

    def __init__(self, folder: Path, mode: str = "ok"):
        assert mode in MODES, mode
        self.files = {p.name: p.read_bytes() for p in folder.iterdir()}
        self.mode = mode
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_GET(self):
                hub.answer(self, body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler, body: bool) -> None:
        path = handler.path.split("?")[0]
        if path.startswith("/api/models/"):
            return self.api(handler, path)
        name = path.rsplit("/", 1)[-1]
        if "/resolve/" not in path or name not in self.files:
            return self.send(handler, 404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"})
        data = self.files[name]
        size = 5 * 1024**3 if self.mode == "huge" and name == "model.safetensors" else len(data)
        headers = {"X-Repo-Commit": SHA, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Content-Length": str(size)}
        handler.send_response(200)
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        if not body:
            return
        if name != "model.safetensors" or self.mode in ("ok", "garbled-api"):
            handler.wfile.write(data)
        elif self.mode in ("trickle", "huge"):  # 1 KiB a second, as long as the client listens
            try:
                for i in range(0, size, 1024):
                    handler.wfile.write((data * 3000)[i:i + 1024] if i < len(data) * 3000 else b"\0" * 1024)
                    handler.wfile.flush()
                    time.sleep(1.0)
            except OSError:
                pass
        elif self.mode == "cut":  # half the file, then the connection drops
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)

    def api(self, handler, path: str) -> None:
        if self.mode == "garbled-api":
            return self.send(handler, 200, json.dumps({"sha": ["not", "a", "sha"], "siblings": 7}).encode())
        if "/tree/" in path:
            tree = [{"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                    for n, d in self.files.items()]
            self.send(handler, 200, json.dumps(tree).encode())
            if self.mode == "dies-after-api":
                threading.Thread(target=self.stop, daemon=True).start()
            return
        repo = "/".join(path.split("/")[3:5])
        info = {"id": repo, "modelId": repo, "sha": SHA, "private": False,
                "siblings": [{"rfilename": n} for n in self.files]}
        self.send(handler, 200, json.dumps(info).encode())

    @staticmethod
    def send(handler, status: int, body: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(body)


if __name__ == "__main__":  # python tests/fakehub.py FOLDER MODE: serve until killed (for a subprocess)
    import sys

    hub = FakeHub(Path(sys.argv[1]), sys.argv[2])
    print(hub.endpoint, flush=True)
    hub.server.serve_forever()
