"""tinykv's node: a primary-backup key-value store in one small program.

``n1`` is the primary. Every node serves ``POST /op`` (``{"f", "key", "value"}``
-> ``{"type", "value", "error"}``) on its client address and ``POST /apply`` on
its peer address. A backup forwards writes (``write``, ``cas``, ``append``) to
the primary over the address its ``--peers`` names for it; the primary applies
a write, sends it to every backup's ``/apply`` and answers once all of them
took it (a backup that does not answer makes the write indefinite: 503).
Reads are answered by the node asked, from its own state (``--reads local``), or
forwarded to the primary (``--reads primary``). State is a JSON file in the data
dir, rewritten on every change, so a killed node restarts with what it had.

It is deliberately simple: local reads on a backup cut off from the primary
are stale, which jepsenlike's register checker catches under partitions.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id = args.id
        self.peers = dict(p.split("=", 1) for p in args.peers.split(",") if p)
        self.primary = args.primary
        self.reads = args.reads
        self.path = os.path.join(args.data_dir, "state.json")
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {}
        if os.path.exists(self.path):
            with open(self.path) as fh:
                self.data = json.load(fh)

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.data, fh)
        os.replace(tmp, self.path)

    def post(self, addr: str, path: str, doc: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(f"http://{addr}{path}", json.dumps(doc).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=1.0) as resp:
            return json.loads(resp.read())

    def op(self, op: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        f, key, value = op["f"], str(op.get("key")), op.get("value")
        if f == "read" and (self.reads == "local" or self.id == self.primary):
            with self.lock:
                return 200, {"type": "ok", "value": self.data.get(key)}
        if self.id != self.primary:
            try:  # an HTTPError (the primary's 503) is an OSError too
                return 200, self.post(self.peers[self.primary], "/forward", op)
            except OSError as e:
                return 503, {"error": f"primary unreachable: {e}"}
        with self.lock:
            cur = self.data.get(key)
            if f == "read":
                return 200, {"type": "ok", "value": cur}
            if f == "cas" and cur != value[0]:
                return 200, {"type": "fail", "error": "cas-mismatch"}
            new = value[1] if f == "cas" else [*(cur or []), value] if f == "append" else value
            self.data[key] = new
            self.save()
            for peer in self.peers.values():
                try:
                    self.post(peer, "/apply", {"key": key, "value": new})
                except OSError as e:
                    return 503, {"error": f"backup did not confirm: {e}"}
        return 200, {"type": "ok", "value": value}

    def apply(self, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.data[doc["key"]] = doc["value"]
            self.save()
        return 200, {"ok": True}


def serve(node: Node, addr: str, routes: dict[str, Any]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, doc = routes[self.path](body)
            self.reply(status, doc)

        def do_GET(self) -> None:  # noqa: N802
            self.reply(200, {"id": node.id, "role": "leader" if node.id == node.primary else "backup"})

        def reply(self, status: int, doc: dict[str, Any]) -> None:
            raw = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    host, port = addr.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    p = argparse.ArgumentParser(description="tinykv node")
    for flag in ("--id", "--client-addr", "--peer-addr", "--peers", "--data-dir"):
        p.add_argument(flag, required=True)
    p.add_argument("--primary", default="n1")
    p.add_argument("--reads", choices=("local", "primary"), default="primary")
    args = p.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    node = Node(args)
    serve(node, args.peer_addr, {"/apply": node.apply, "/forward": node.op})
    serve(node, args.client_addr, {"/op": node.op})
    print(f"tinykv {node.id} serving on {args.client_addr}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
