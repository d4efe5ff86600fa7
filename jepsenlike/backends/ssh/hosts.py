"""Hosts files and SSH connections for the ssh backend (the system OpenSSH client).

Theory of operation
-------------------
A *hosts file* lists one host per line: ``[user@]host[:port]`` followed by
optional ``key=VALUE`` words (``key=PATH`` identity file,
``known_hosts=PATH``, ``addr=IP`` the address nodes use to reach each other
and bind to, default the host's own address). ``#`` starts a comment; ``~`` in paths is the harness user's home. A word
without ``=`` after the host is taken as the key path. Defaults for every host
come from the ``ssh`` backend's options (``--option ssh.user=admin`` or an
``[options.ssh]`` table in the ``--config`` file).

:class:`SSH` wraps ``ssh`` with, for every call: ``BatchMode=yes`` (never a
password prompt), ``ConnectTimeout``, ``StrictHostKeyChecking`` (``yes`` by
default; ``accept-new`` trusts a host seen for the first time and records it,
refusing a changed key later), ``ServerAliveInterval`` and connection reuse
(``ControlMaster=auto`` with a ``ControlPersist`` of 60 s and a socket in a
private temporary directory, so the handshake happens once per host and a
master left by a dead harness goes away by itself; its empty directory is
swept by a later run). :meth:`SSH.close` stops the master at once. A user other than ``root`` gets ``sudo -n`` in front of
every remote command (passwordless sudo is required).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jepsenlike.errors import ConfigError


@dataclass(frozen=True)
class Host:
    """One line of a hosts file."""

    host: str
    user: str = "root"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    addr: str | None = None

    @property
    def ip(self) -> str:
        """The address nodes bind to and peers dial (``addr=``, else the host resolved here)."""
        if self.addr:
            return self.addr
        try:
            return socket.getaddrinfo(self.host, None, socket.AF_INET)[0][4][0]
        except OSError as e:
            raise ConfigError(f"host {self.host!r} does not resolve ({e}); give addr=IP in the "
                              "hosts file") from e

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")


def parse_hosts(text: str, where: str = "hosts file", *, user: str = "root", key: str | None = None,
                known_hosts: str | None = None, port: int = 22) -> list[Host]:
    """The hosts of a hosts file's text; one-line ConfigError naming the line on a bad one."""
    hosts: list[Host] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        spec, opts = words[0], words[1:]
        h_user, h_port, h_key, h_known, h_addr = user, port, key, known_hosts, None
        if "@" in spec:
            h_user, spec = spec.split("@", 1)
        if spec.count(":") == 1:
            spec, p = spec.split(":")
            try:
                h_port = int(p)
            except ValueError:
                raise ConfigError(f"{where}:{lineno}: port {p!r} is not a number; "
                                  "write [user@]host[:port]") from None
        if not spec or not h_user:
            raise ConfigError(f"{where}:{lineno}: {raw.strip()!r} is not [user@]host[:port]")
        for w in opts:
            k, eq, v = w.partition("=")
            if not eq:
                h_key = w
            elif k == "key":
                h_key = v
            elif k == "known_hosts":
                h_known = v
            elif k == "addr":
                h_addr = v
            else:
                raise ConfigError(f"{where}:{lineno}: unknown setting {k!r}; use key=, "
                                  "known_hosts= or addr=")
        expand = os.path.expanduser
        hosts.append(Host(spec, h_user, h_port, expand(h_key) if h_key else None,
                          expand(h_known) if h_known else None, h_addr))
    if not hosts:
        raise ConfigError(f"{where} lists no host; write one [user@]host[:port] per line")
    if len({(h.host, h.port) for h in hosts}) != len(hosts):
        raise ConfigError(f"{where} lists a host twice; one node runs per host")
    return hosts


def read_hosts_file(path: str, **defaults: object) -> list[Host]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"--hosts-file {path}: {e.strerror}; write one [user@]host[:port] per "
                          "line (`jepsenlike docker hosts up N` makes one)") from e
    return parse_hosts(text, path, **defaults)  # type: ignore[arg-type]


def sweep_control_dirs(min_age: float = 120.0) -> None:
    """Remove empty control directories a killed harness left (their masters have exited)."""
    import glob
    import time

    for d in glob.glob("/tmp/jl-ssh-*"):
        try:
            if time.time() - os.stat(d).st_mtime > min_age:
                os.rmdir(d)  # fails, harmlessly, while a master's socket is in it
        except OSError:
            pass


class SSH:
    """The OpenSSH client, set up once for one host."""

    def __init__(self, host: Host, *, connect_timeout: float = 10.0,
                 host_key_checking: str = "yes", control_dir: str | None = None) -> None:
        if host_key_checking not in ("yes", "accept-new", "no"):
            raise ConfigError(f"host_key_checking must be yes, accept-new or no; got "
                              f"{host_key_checking!r}")
        self.host = host
        self._own_dir = control_dir is None
        if control_dir is None:
            sweep_control_dirs()
        self.control_dir = control_dir or tempfile.mkdtemp(prefix="jl-ssh-", dir="/tmp")
        opts = {
            "BatchMode": "yes",
            "ConnectTimeout": str(int(max(1, connect_timeout))),
            "StrictHostKeyChecking": host_key_checking,
            "ControlMaster": "auto",
            "ControlPath": f"{self.control_dir}/%C",
            "ControlPersist": "60",
            "ServerAliveInterval": "5",
            "ServerAliveCountMax": "3",
            "LogLevel": "ERROR",
        }
        if host.known_hosts:
            opts["UserKnownHostsFile"] = host.known_hosts
        if host.key:
            opts["IdentityFile"] = host.key
            opts["IdentitiesOnly"] = "yes"
        self.base = ["ssh", "-p", str(host.port), "-l", host.user]
        for k, v in opts.items():
            self.base += ["-o", f"{k}={v}"]
        self.base.append(host.host)
        self.sudo = [] if host.user == "root" else ["sudo", "-n"]

    def argv(self, remote: list[str], *, sudo: bool = True) -> list[str]:
        """The local argv running ``remote`` on the host (quoted for the remote shell)."""
        return [*self.base, "--", shlex.join([*(self.sudo if sudo else []), *remote])]

    def run(self, remote: list[str], *, input: bytes | None = None, timeout: float = 120.0,
            sudo: bool = True, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run ``remote``; with ``check``, a failure raises ConfigError with ssh's message."""
        try:
            r = subprocess.run(self.argv(remote, sudo=sudo), input=input, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"ssh {self.host}: `{shlex.join(remote)[:80]}` took over "
                              f"{timeout:g} s") from None
        if check and r.returncode != 0:
            err = (r.stderr or r.stdout).decode("utf-8", "replace").strip()[-600:]
            hint = ""
            if r.returncode == 255:
                hint = ("; check the address, key and host key (--option "
                        "ssh.host_key_checking=accept-new trusts a new host)")
            raise ConfigError(f"ssh {self.host}: `{shlex.join(remote)[:80]}` failed "
                              f"({r.returncode}): {err}{hint}")
        return r

    def close(self) -> None:
        """Stop the connection master (if any)."""
        subprocess.run([*self.base[:-1], "-O", "exit", self.host.host], capture_output=True,
                       timeout=10)
        if self._own_dir:
            import shutil

            shutil.rmtree(self.control_dir, ignore_errors=True)
