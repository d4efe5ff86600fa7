"""``jepsenlike serve``: browse a store's runs, their reports and files, over HTTP.

Theory of operation
-------------------
A stdlib :class:`http.server.ThreadingHTTPServer` (one thread per request)
bound to ``127.0.0.1`` unless ``--host`` says otherwise. The store is
scanned on every request to ``/`` (runs appear as they finish); a run is a
directory ``<store>/<test>/<timestamp>/`` with a ``test.json``. Routes:

* ``/``: one row per run (test, start time, system, workload, faults, verdict;
  each run's files are read once and re-read when their mtime changes)
  with links to its report, its files and a zip; newest first, every column
  sortable by clicking its header.
* ``/api/runs.json``: the same rows as JSON.
* ``/run/<test>/<timestamp>/``: the run's files; ``/run/<path>``: one file
  under the store. A run's ``report.html`` that does not exist yet (a run
  stored before reports existed) is written on first request.
* ``/zip/<test>/<timestamp>.zip``: the run directory as a zip archive.

Path traversal: a request path is split into segments and refused (404) if
any segment is empty, ``.``, ``..``, or holds a separator or NUL; the joined
path is then resolved (symlinks followed) and must still lie inside the
resolved store, so neither ``..`` nor a symlink can reach outside it. Only
GET and HEAD are answered.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import tempfile
import threading
import zipfile
from dataclasses import asdict, dataclass
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from jepsenlike.errors import ConfigError

TEXT_SUFFIXES = {".jsonl": "text/plain", ".log": "text/plain", ".txt": "text/plain", ".edn": "text/plain"}


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="browse stored runs, reports and files in a web browser",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--store", default="store", metavar="DIR", help="store directory (default: store)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, metavar="N", help="port (default: 8080; 0: any free port)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    p.set_defaults(func=serve_command)


@dataclass
class RunRow:
    """One run in the listing."""

    path: str
    test: str
    stamp: str
    started_at: str
    system: str
    workload: str
    nemesis: str
    faults: str
    verdict: str
    seed: Any
    bug: str
    has_report: bool


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


# Rows of runs already read, keyed by run directory and invalidated by the files' mtimes:
# the index is rebuilt on every request, but a finished run is read once.
_CACHE: dict[Path, tuple[tuple[Any, ...], RunRow]] = {}
_CACHE_LOCK = threading.Lock()


def _mtime(p: Path) -> int | None:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return None


def scan_runs(store: Path) -> list[RunRow]:
    """Every run directory in the store, newest first (``latest`` links skipped)."""
    from jepsenlike.report.model import fired_faults, verdict_word

    rows: list[RunRow] = []
    if not store.is_dir():
        return rows
    for test_dir in store.iterdir():
        if test_dir.is_symlink() or not test_dir.is_dir():
            continue
        for run_dir in test_dir.iterdir():
            if run_dir.is_symlink() or not (run_dir / "test.json").is_file():
                continue
            results_path = run_dir / "results.json"
            stamp = (_mtime(run_dir / "test.json"), _mtime(results_path), (run_dir / "report.html").exists())
            with _CACHE_LOCK:
                hit = _CACHE.get(run_dir)
            if hit is not None and hit[0] == stamp:
                rows.append(hit[1])
                continue
            test = _read(run_dir / "test.json")
            results = _read(results_path)
            cfg = test.get("config") or {}
            if not results_path.exists():
                verdict = "RUNNING" if not test.get("finished_at") else "NO RESULTS"
            else:
                verdict = "CRASHED" if results.get("crashed") else verdict_word(results.get("valid"))
            fired = fired_faults(results)
            row = RunRow(
                path=f"{test_dir.name}/{run_dir.name}", test=test_dir.name, stamp=run_dir.name,
                started_at=str(test.get("started_at", "")), system=str(cfg.get("system", "")),
                workload=str(cfg.get("workload", "")), nemesis=",".join(cfg.get("nemesis") or []),
                faults=", ".join(f"{f}×{n}" for f, n in fired.items()), verdict=verdict,
                seed=test.get("seed"), bug=str(cfg.get("bug") or ""),
                has_report=stamp[2],
            )
            with _CACHE_LOCK:
                _CACHE[run_dir] = (stamp, row)
            rows.append(row)
    rows.sort(key=lambda r: (r.stamp, r.test), reverse=True)
    return rows


def safe_path(store: Path, rel: str) -> Path | None:
    """``store/rel`` if it stays inside the store (see the module docstring), else None."""
    segments = rel.split("/")
    if rel.endswith("/"):
        segments = segments[:-1]
    for s in segments:
        if s in ("", ".", "..") or "\\" in s or "\x00" in s or os.sep in s:
            return None
    root = store.resolve()
    try:
        target = root.joinpath(*segments).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if target != root and not target.is_relative_to(root):
        return None
    return target


INDEX_CSS = """
body { font-family: system-ui, sans-serif; margin: 20px; color: #222; }
h1 { font-size: 20px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
.VALID { color: #2e7d32; font-weight: 700; } .INVALID { color: #c62828; font-weight: 700; }
.UNKNOWN, .CRASHED, .RUNNING, .NO.RESULTS { color: #ef6c00; font-weight: 700; }
.muted { color: #888; }
"""

INDEX_JS = """
(function () {
  var table = document.getElementById("runs");
  var ths = table.querySelectorAll("th[data-col]");
  ths.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("sorted-asc");
      ths.forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort || a.cells[col].textContent;
        var y = b.cells[col].dataset.sort || b.cells[col].textContent;
        var nx = Number(x), ny = Number(y);
        var c = (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def index_html(store: Path, rows: list[RunRow]) -> str:
    head = ("<tr><th data-col='time' class='sorted-desc'>started</th><th data-col='test'>test</th>"
            "<th data-col='system'>system</th><th data-col='workload'>workload</th>"
            "<th data-col='faults'>faults</th><th data-col='seed'>seed</th>"
            "<th data-col='verdict'>verdict</th><th>links</th></tr>")
    body = []
    for r in rows:
        link = quote(r.path)
        report = (f"<a class='report-link' href='/run/{link}/report.html'>report</a>" if r.has_report or
                  r.verdict not in ("RUNNING", "NO RESULTS") else "<span class='muted'>no report</span>")
        system = escape(r.system) + (f" <span class='muted'>bug {escape(r.bug)}</span>" if r.bug else "")
        body.append(
            f"<tr class='run' data-path='{escape(r.path)}'><td data-sort='{escape(r.stamp)}'>{escape(r.started_at or r.stamp)}</td>"
            f"<td>{escape(r.test)}</td><td>{system}</td><td>{escape(r.workload)}</td>"
            f"<td>{escape(r.faults or r.nemesis or 'none')}</td><td>{escape(str(r.seed))}</td>"
            f"<td class='verdict {escape(r.verdict)}'>{escape(r.verdict)}</td>"
            f"<td>{report} · <a href='/run/{link}/'>files</a> · <a href='/zip/{link}.zip'>zip</a></td></tr>"
        )
    empty = "" if rows else f"<p>No runs in {escape(str(store))} yet.</p>"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>jepsenlike runs</title>"
            f"<style>{INDEX_CSS}</style></head><body><h1>Runs in {escape(str(store.resolve()))}</h1>"
            f"<p class='muted'>{len(rows)} run(s); newest first; click a header to sort.</p>{empty}"
            f"<table id='runs'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
            f"<script>{INDEX_JS}</script></body></html>")


def listing_html(store: Path, run_dir: Path) -> str:
    rel = run_dir.relative_to(store.resolve()).as_posix()
    items = []
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            r = p.relative_to(run_dir).as_posix()
            items.append(f"<li><a href='/run/{quote(rel)}/{quote(r)}'>{escape(r)}</a> "
                         f"<span class='muted'>{p.stat().st_size:,} bytes</span></li>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(rel)}</title>"
            f"<style>{INDEX_CSS}</style></head><body><p><a href='/'>all runs</a></p><h1>{escape(rel)}</h1>"
            f"<p><a href='/run/{quote(rel)}/report.html'>report</a> · <a href='/zip/{quote(rel)}.zip'>zip</a></p>"
            f"<ul>{''.join(items)}</ul></body></html>")


class StoreServer(ThreadingHTTPServer):
    """The HTTP server, holding the store it serves."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Path, quiet: bool = False) -> None:
        self.store = Path(store)
        self.quiet = quiet
        self.report_lock = threading.Lock()
        super().__init__(address, StoreHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class StoreHandler(BaseHTTPRequestHandler):
    server: StoreServer
    server_version = "jepsenlike-serve"

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_GET(self) -> None:
        self._handle(head=False)

    def _send(self, status: int, body: bytes, ctype: str, head: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, text: str, head: bool) -> None:
        self._send(status, f"{status} {text}\n".encode(), "text/plain; charset=utf-8", head)

    def _handle(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        store = self.server.store
        try:
            if path in ("/", "/index.html"):
                self._send(200, index_html(store, scan_runs(store)).encode(), "text/html; charset=utf-8", head)
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", True)  # no icon, and no 404 noise
            elif path == "/api/runs.json":
                body = json.dumps([asdict(r) for r in scan_runs(store)], default=str).encode()
                self._send(200, body, "application/json", head)
            elif path.startswith("/zip/") and path.endswith(".zip"):
                self._zip(path[len("/zip/"):-len(".zip")], head)
            elif path.startswith("/run/"):
                self._file(path[len("/run/"):], head)
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found", head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _run_dir(self, rel: str) -> Path | None:
        target = safe_path(self.server.store, rel)
        if target is None or not target.is_dir() or not (target / "test.json").is_file():
            return None
        return target

    def _file(self, rel: str, head: bool) -> None:
        if rel.endswith("/report.html"):
            run_dir = self._run_dir(rel[: -len("/report.html")])
            if run_dir is not None and not (run_dir / "report.html").exists():
                with self.server.report_lock:
                    if not (run_dir / "report.html").exists():
                        from jepsenlike.report import write_run_report

                        write_run_report(run_dir)
        target = safe_path(self.server.store, rel)
        if target is None:
            self._error(HTTPStatus.NOT_FOUND, "not found", head)
            return
        if target.is_dir():
            if (target / "test.json").is_file():
                if not self.path.split("?")[0].endswith("/"):
                    self._send(301, b"", "text/plain", head, {"Location": self.path.split("?")[0] + "/"})
                    return
                self._send(200, listing_html(self.server.store, target).encode(), "text/html; charset=utf-8", head)
            else:
                self._error(HTTPStatus.NOT_FOUND, "not a run directory", head)
            return
        ctype = TEXT_SUFFIXES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        self._send(200, target.read_bytes(), ctype, head)

    def _zip(self, rel: str, head: bool) -> None:
        run_dir = self._run_dir(rel)
        if run_dir is None:
            self._error(HTTPStatus.NOT_FOUND, "no such run", head)
            return
        root = self.server.store.resolve()
        prefix = run_dir.relative_to(root).as_posix()
        with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as buf:
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(run_dir.rglob("*")):
                    if p.is_file() and not p.is_symlink():
                        zf.write(p, f"{prefix}/{p.relative_to(run_dir).as_posix()}")
            size = buf.tell()
            buf.seek(0)
            name = prefix.replace("/", "_") + ".zip"
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Disposition", f'attachment; filename="{name}"')
            self.end_headers()
            if not head:
                while chunk := buf.read(1 << 16):
                    self.wfile.write(chunk)


def make_server(store: str | Path, host: str = "127.0.0.1", port: int = 8080, quiet: bool = False) -> StoreServer:
    """A bound server (not yet serving); ``port=0`` picks a free port (see ``.url``).

    Raises:
        ConfigError: the store does not exist, or the address cannot be bound.
    """
    s = Path(store)
    if not s.is_dir():
        raise ConfigError(f"--store: no such directory: {s}")
    try:
        return StoreServer((host, port), s, quiet=quiet)
    except OSError as e:
        raise ConfigError(f"--host {host} --port {port}: cannot listen: {e.strerror or e}") from None


def serve_command(args: argparse.Namespace) -> int:
    from jepsenlike.numbers import check_number

    check_number("--port", args.port, minimum=0, strict=False, maximum=65535)
    server = make_server(args.store, args.host, args.port, args.quiet)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"jepsenlike: warning: serving {args.store} on {args.host}: anyone who can reach it can "
              "read every run", file=sys.stderr)
    print(f"jepsenlike: serving {Path(args.store).resolve()} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
