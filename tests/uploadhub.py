"""A Hub on 127.0.0.1 that takes uploads, for the push_to_hub tests: the three calls huggingface_hub's
``upload_folder`` makes (create the repo, ask each file's upload mode, commit), every file "regular"
(base64 in the commit's NDJSON body), kept in memory as ``repos[repo_id][path] = bytes``.

olah (hubserver.py) serves downloads only; this is the other direction. ``refuse`` answers every
commit with that HTTP status instead (a token without write access, a full quota).
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import threading


class UploadHub:
    """``UploadHub().start()``; ``endpoint`` for huggingface_hub; ``repos`` what was committed."""

    def __init__(self, refuse: int | None = None):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.unknown: list[str] = []  # requests it has no answer for (a test can assert there were none)
        self.refuse = refuse
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                hub.post(self)

            def do_GET(self):
                hub.unknown.append(f"GET {self.path}")
                hub.send(self, 404, {"error": "not found"})

            do_HEAD = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> UploadHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def post(self, handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        path = handler.path.split("?")[0]
        if path == "/api/validate-yaml":  # the Hub checks a README's metadata block before the upload
            return self.validate_yaml(handler, json.loads(body)["content"])
        if path == "/api/repos/create":
            repo = f"{json.loads(body).get('organization') or 'user'}/{json.loads(body)['name']}"
            self.repos.setdefault(repo, {})
            return self.send(handler, 200, {"url": f"{self.endpoint}/{repo}", "name": repo})
        parts = path.split("/")  # /api/models/<org>/<name>/<preupload|commit>/<revision>
        if len(parts) >= 7 and parts[:3] == ["", "api", "models"] and parts[5] in ("preupload", "commit"):
            repo = f"{parts[3]}/{parts[4]}"
            if parts[5] == "preupload":
                files = json.loads(body)["files"]
                return self.send(handler, 200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                           "shouldIgnore": False} for f in files]})
            if self.refuse:
                return self.send(handler, self.refuse, {"error": "refused by the test hub"})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.repos.setdefault(repo, {})[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] != "header":
                    self.unknown.append(f"commit item {item['key']}")
            return self.send(handler, 200, {"commitUrl": f"{self.endpoint}/{repo}/commit/1", "commitOid": "1" * 40,
                                            "pullRequestUrl": None})
        self.unknown.append(f"POST {path}")
        self.send(handler, 404, {"error": "not found"})

    def validate_yaml(self, handler, content: str) -> None:
        import yaml

        head, sep, rest = content.partition("---\n")
        block = rest.partition("\n---")[0] if (sep and not head.strip()) else None
        try:
            meta = yaml.safe_load(block) if block is not None else None
            ok = isinstance(meta, dict)
        except yaml.YAMLError:
            ok = False
        self.validated = getattr(self, "validated", 0) + 1
        if not ok:
            return self.send(handler, 400, {"errors": [{"message": "no YAML metadata block"}]})
        self.send(handler, 200, {"errors": [], "warnings": []})

    @staticmethod
    def send(handler, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
