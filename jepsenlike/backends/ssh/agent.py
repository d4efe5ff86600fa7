"""The per-host agent of the ssh backend: supervises one run's nodes on one host.

Theory of operation
-------------------
The harness starts one agent per host and run, over one SSH session::

    ssh HOST sudo -n VENV/bin/python -m jepsenlike.backends.ssh.agent RUN_DIR --lease 20

and talks to it in JSON lines: one request on the agent's stdin, one answer
on its stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``).
This module imports only the standard library, so it runs on a host where the
project's wheel was installed without its dependencies.

The agent is the *supervisor* of the run on its host. It starts each node in
its own session and process group (``spawn``), with output appended to
``RUN_DIR/nodes/<id>.log``, and records the group id in ``RUN_DIR/pids/<id>``.
Faults are signals to the group (``signal``: ``KILL`` -- reaped before the
answer --, ``STOP``, ``CONT``), partitions are ``iptables-restore --noflush``
of the chain :data:`CHAIN` (``iptables``; the chain is created and jumped to
from ``INPUT`` at start), clock faults are atomic rewrites of a node's
libfaketime control file under ``RUN_DIR`` (``write``).

The agent ends the run on its host -- kills every node group, deletes the
chain and its ``INPUT`` jump, deletes ``RUN_DIR`` (control files, data, logs:
the harness fetched what it wanted first) -- when any of these happens:

* ``bye`` (the harness's normal teardown);
* end of file on stdin: the SSH channel closed, i.e. the harness or its ssh
  client died (even ``kill -9``: the pipe to ssh closes with the process);
* no request for ``--lease`` seconds: the harness pings every third of the
  lease, so a lost network path between harness and host also ends the run;
* SIGTERM, SIGHUP or SIGINT to the agent.

``--no-net`` leaves iptables alone (for tests of the protocol on a
machine whose firewall is not ours). ``python3 - clean ROOT [--all]`` (this file's source on stdin; see
:func:`clean`) is the fallback when even the agent died (``kill -9`` of the
agent itself, a reboot of sshd): it kills the recorded groups of every run
whose agent is gone (``--all``: of every run), removes their directories and,
when no live agent remains, the chain. ``jepsenlike clean --backend ssh``
runs it on every host.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CHAIN = "JEPSENLIKE"
SIGNALS = {"KILL": signal.SIGKILL, "STOP": signal.SIGSTOP, "CONT": signal.SIGCONT,
           "TERM": signal.SIGTERM}


def _run(argv: list[str], stdin: str | None = None, timeout: float = 30.0) -> tuple[int, str]:
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return r.returncode, (r.stdout + r.stderr).strip()


def chain_setup() -> tuple[int, str]:
    """Create (or empty) :data:`CHAIN` and make it the first rule of ``INPUT``, once."""
    remove_jumps()
    return _run(["iptables-restore", "-w", "5", "--noflush"],
                f"*filter\n:{CHAIN} - [0:0]\n-I INPUT 1 -j {CHAIN}\nCOMMIT\n")


def remove_jumps() -> None:
    for _ in range(100):  # every INPUT jump to our chain, however many a crash left
        if _run(["iptables", "-w", "5", "-D", "INPUT", "-j", CHAIN])[0] != 0:
            break


def chain_remove() -> None:
    """Delete the chain and every ``INPUT`` jump to it; quiet when there is none."""
    remove_jumps()
    _run(["iptables", "-w", "5", "-F", CHAIN])
    _run(["iptables", "-w", "5", "-X", CHAIN])


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Agent:
    """One run on this host: its nodes, its chain, its directory."""

    def __init__(self, run_dir: Path, lease: float, net: bool = True) -> None:
        self.run_dir = run_dir
        self.lease = lease
        self.net = net
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.RLock()
        self.done = False

    # -- requests -------------------------------------------------------------

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            return {"ok": False, "error": f"unknown op {op!r}"}
        try:
            return {"ok": True, **(fn(req) or {})}
        except Exception as e:  # the harness shows the message
            return {"ok": False, "error": f"{op}: {type(e).__name__}: {e}"}

    def op_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}

    def op_spawn(self, req: dict[str, Any]) -> dict[str, Any]:
        node = str(req["node"])
        with self.lock:
            old = self.procs.get(node)
            if old is not None and old.poll() is None:
                return {"pid": old.pid, "already": True}
            (self.run_dir / "nodes").mkdir(parents=True, exist_ok=True)
            for d in req.get("mkdirs", []):
                Path(d).mkdir(parents=True, exist_ok=True)
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C.UTF-8", **req.get("env", {})}
            with open(self.run_dir / "nodes" / f"{node}.log", "ab") as log:
                p = subprocess.Popen(req["argv"], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(self.run_dir),
                                     start_new_session=True)
            self.procs[node] = p
            (self.run_dir / "pids").mkdir(exist_ok=True)
            (self.run_dir / "pids" / node).write_text(str(p.pid))
            return {"pid": p.pid}

    def op_signal(self, req: dict[str, Any]) -> dict[str, Any]:
        node, name = str(req["node"]), str(req["sig"])
        with self.lock:
            p = self.procs.get(node)
            if p is None or p.poll() is not None:
                return {"running": False, "returncode": None if p is None else p.returncode}
            os.killpg(p.pid, SIGNALS[name])
            if name == "KILL":
                p.wait(timeout=30)
                return {"running": False, "returncode": p.returncode}
            return {"running": True}

    def op_status(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            p = self.procs.get(str(req["node"]))
            if p is None:
                return {"running": False, "returncode": None}
            rc = p.poll()
            return {"running": rc is None, "returncode": rc}

    def op_iptables(self, req: dict[str, Any]) -> dict[str, Any]:
        rc, out = _run(["iptables-restore", "-w", "5", "--noflush"], str(req["rules"]))
        if rc != 0:
            raise RuntimeError(f"iptables-restore failed ({rc}): {out}")
        return {}

    def _path(self, rel: str) -> Path:
        p = (self.run_dir / rel).resolve()
        if not p.is_relative_to(self.run_dir.resolve()):
            raise ValueError(f"{rel!r} is outside the run directory")
        return p

    def op_write(self, req: dict[str, Any]) -> dict[str, Any]:
        path = self._path(str(req["path"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(str(req["text"]))
        os.replace(tmp, path)  # readers (libfaketime) see the old line or the new one
        return {}

    def op_read(self, req: dict[str, Any]) -> dict[str, Any]:
        path = self._path(str(req["path"]))
        limit = int(req.get("limit", 16 << 20))
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - limit))
                data = fh.read()
        except FileNotFoundError:
            return {"missing": True}
        return {"data": base64.b64encode(data).decode(), "size": size}

    def op_listing(self, req: dict[str, Any]) -> dict[str, Any]:
        """``size path`` for every file under the directory (a data dir), sorted."""
        root = Path(str(req["dir"]))
        lines = []
        for dirpath, _dirs, files in os.walk(root):
            for f in sorted(files):
                p = Path(dirpath) / f
                try:
                    lines.append(f"{p.stat().st_size:>12} {p.relative_to(root)}")
                except OSError:
                    pass
        return {"text": "\n".join(sorted(lines, key=lambda s: s[13:])) + "\n"}

    def op_exec(self, req: dict[str, Any]) -> dict[str, Any]:
        rc, out = _run([str(a) for a in req["argv"]], timeout=float(req.get("timeout", 30)))
        return {"rc": rc, "out": out}

    def op_bye(self, req: dict[str, Any]) -> dict[str, Any]:
        self.finish()
        return {}

    # -- the end ----------------------------------------------------------------

    def finish(self) -> None:
        """Kill every node group, remove the chain and the run directory. Idempotent."""
        with self.lock:
            if self.done:
                return
            self.done = True
            for p in self.procs.values():
                _kill_group(p.pid)
            for p in self.procs.values():
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        if self.net:
            chain_remove()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def serve(self) -> None:
        rc, out = chain_setup() if self.net else (0, "")
        info = {"ok": rc == 0, "pid": os.getpid(), "python": sys.version.split()[0],
                "faketime": _faketime_lib()}
        if rc != 0:
            info["error"] = f"cannot set up iptables chain {CHAIN}: {out}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "agent.pid").write_text(str(os.getpid()))
        _send(info)
        if rc != 0:
            self.finish()
            return
        fd = sys.stdin.fileno()
        buf = b""
        last = time.monotonic()
        while not self.done:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if time.monotonic() - last > self.lease:
                    break  # the harness went silent: end the run here
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break  # the SSH channel closed: the harness is gone
            last = time.monotonic()
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    _send(self.handle(json.loads(line)))
        self.finish()


def _send(obj: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass


def _faketime_lib() -> str | None:
    for d in sorted(Path("/usr/lib").glob("*/faketime")) + [Path("/usr/lib/faketime")]:
        for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
            if (d / name).is_file():
                return str(d / name)
    return None


def _alive(pid: int) -> bool:
    """Is ``pid`` a running process (a zombie, killed but not yet reaped, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def clean(root: Path, everything: bool = False) -> list[str]:
    """Remove what runs under ``root/runs`` left: node groups, directories, the chain.

    A run whose agent still lives is left alone unless ``everything`` (it ends
    itself within its lease). Returns one line per thing removed.
    """
    done: list[str] = []
    live = 0
    runs = root / "runs"
    for run in sorted(runs.iterdir()) if runs.is_dir() else []:
        try:
            agent = int((run / "agent.pid").read_text())
        except (OSError, ValueError):
            agent = 0
        if agent and _alive(agent):
            if not everything:
                live += 1
                continue
            os.kill(agent, signal.SIGKILL)
            done.append(f"killed agent {agent} of run {run.name}")
        for pidfile in sorted((run / "pids").glob("*")):
            try:
                pgid = int(pidfile.read_text())
            except (OSError, ValueError):
                continue
            if _alive(pgid):
                _kill_group(pgid)
                done.append(f"killed node {pidfile.name} (process group {pgid}) of run {run.name}")
        shutil.rmtree(run, ignore_errors=True)
        done.append(f"removed {run}")
    if not live and _run(["iptables", "-w", "5", "-n", "-L", CHAIN])[0] == 0:
        chain_remove()
        done.append(f"removed iptables chain {CHAIN}")
    return done


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "clean":
        for line in clean(Path(args[1]), everything="--all" in args):
            print(line)
        return 0
    run_dir = Path(args[0])
    lease = float(args[args.index("--lease") + 1]) if "--lease" in args else 30.0
    agent = Agent(run_dir, lease, net="--no-net" not in args)

    def on_signal(signum: int, frame: Any) -> None:
        agent.finish()
        os._exit(0)

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    agent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
