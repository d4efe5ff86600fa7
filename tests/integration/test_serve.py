"""``jepsenlike serve``: a real HTTP server on a free loopback port."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jepsenlike.commands.serve import StoreServer, make_server
from jepsenlike.report.samples import write_sample_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    s = tmp_path_factory.mktemp("store")
    write_sample_run(s, "valid-register", seed=7)
    time.sleep(0.01)  # distinct timestamps: the listing is ordered by them
    run = write_sample_run(s, "invalid-register", seed=7)
    # as if stored before reports existed (or by a runner that does not write them)
    (run / "report.html").unlink(missing_ok=True)
    (s.parent / "secret.txt").write_text("outside the store\n")
    return s


@pytest.fixture
def server(store: Path) -> Iterator[StoreServer]:
    srv = make_server(store, "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)
    assert not t.is_alive()


def get(srv: StoreServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A raw request: the path is sent exactly as given (no client-side normalising)."""
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_binds_loopback_by_default(store):
    srv = make_server(store, port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()


def test_index_lists_runs_newest_first_with_their_verdicts(server, store):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    rows = re.findall(r"<tr class='run' data-path='([^']+)'>", page)
    assert [r.split("/")[0] for r in rows] == ["sample-invalid-register", "sample-valid-register"]
    assert "class='verdict INVALID'" in page and "class='verdict VALID'" in page
    assert "kill×1" in page
    api = json.loads(get(server, "/api/runs.json")[2])
    assert [(r["test"], r["verdict"]) for r in api] == [("sample-invalid-register", "INVALID"),
                                                        ("sample-valid-register", "VALID")]


def test_report_is_written_on_first_request_and_served(server, store):
    run = next((store / "sample-invalid-register").glob("2*"))
    assert not (run / "report.html").exists()
    status, headers, body = get(server, f"/run/sample-invalid-register/{run.name}/report.html")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'id="report-data"' in body and b"verdict-invalid" in body
    assert (run / "report.html").exists()
    assert get(server, f"/run/sample-invalid-register/{run.name}/plots/throughput.png")[2][:4] == b"\x89PNG"


def test_files_listing_and_raw_files(server, store):
    run = next((store / "sample-valid-register").glob("2*"))
    status, _, body = get(server, f"/run/sample-valid-register/{run.name}")
    assert status == 301
    status, _, body = get(server, f"/run/sample-valid-register/{run.name}/")
    assert status == 200
    for name in ("history.jsonl", "results.json", "test.json", "nemesis.log"):
        assert name.encode() in body
    status, headers, body = get(server, f"/run/sample-valid-register/{run.name}/history.jsonl")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert body == (run / "history.jsonl").read_bytes()
    # the latest symlinks resolve inside the store
    status, _, body = get(server, "/run/latest/results.json")
    assert status == 200 and json.loads(body)["valid"] is False
    status, headers, _ = get(server, "/run/latest/test.json", method="HEAD")
    assert status == 200 and int(headers["content-length"]) == len((store / "latest" / "test.json").read_bytes())


def test_zip_of_a_run(server, store):
    run = next((store / "sample-valid-register").glob("2*"))
    status, headers, body = get(server, f"/zip/sample-valid-register/{run.name}.zip")
    assert status == 200 and headers["content-type"] == "application/zip"
    assert "attachment" in headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    prefix = f"sample-valid-register/{run.name}/"
    assert {prefix + n for n in ("history.jsonl", "results.json", "test.json")} <= set(names)
    assert all(n.startswith(prefix) for n in names)


@pytest.mark.parametrize("path", [
    "/run/../secret.txt",
    "/run/%2e%2e/secret.txt",
    "/run/sample-valid-register/../../secret.txt",
    "/run/sample-valid-register/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/run//etc/passwd",
    "/run/%2fetc%2fpasswd",
    "/run/..%5csecret.txt",
    "/run/escape/secret.txt",
    "/zip/../store.zip",
    "/run/sample-valid-register/%00",
    "/../secret.txt",
])
def test_paths_outside_the_store_are_not_served(server, store, path):
    escape = store / "escape"
    if not escape.exists():
        os.symlink(store.parent, escape)  # a symlink inside the store pointing out of it
    status, _, body = get(server, path)
    assert status == 404
    assert b"outside the store" not in body and b"root:" not in body


def test_serve_command_runs_until_interrupted(store, tmp_path):
    """The CLI prints its URL, answers, and exits 0 on SIGINT, leaving nothing behind."""
    code = ("import sys\nfrom jepsenlike import cli\n"
            "cli.COMMANDS = [*cli.COMMANDS, 'serve'] if 'serve' not in cli.COMMANDS else cli.COMMANDS\n"
            "sys.exit(cli.main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--store", str(store), "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        assert m, line + proc.stderr.read()
        conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(2)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_listing_follows_a_run_that_finishes(tmp_path):
    """A run listed while running (no results.json) shows its verdict once results appear."""
    run = write_sample_run(tmp_path, "valid-register", seed=8, name="late-run")
    server = make_server(tmp_path, "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        _follow(server, run)
    finally:
        server.shutdown()
        server.server_close()
        t.join(timeout=5)


def _follow(server: StoreServer, run: Path) -> None:
    results = (run / "results.json").read_text()
    (run / "results.json").unlink()
    test_doc = json.loads((run / "test.json").read_text())
    finished = test_doc.pop("finished_at")
    (run / "test.json").write_text(json.dumps(test_doc))  # as the runner leaves it while running
    rows = {r["test"]: r for r in json.loads(get(server, "/api/runs.json")[2])}
    assert rows["late-run"]["verdict"] == "RUNNING"
    (run / "test.json").write_text(json.dumps({**test_doc, "finished_at": finished}))
    (run / "results.json").write_text(results)
    rows = {r["test"]: r for r in json.loads(get(server, "/api/runs.json")[2])}
    assert rows["late-run"]["verdict"] == "VALID"
