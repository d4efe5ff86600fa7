"""A small EDN reader and writer, and the Jepsen ``history.edn`` importer.

Theory of operation
-------------------
EDN is Clojure's data notation; Jepsen stores histories in it. :func:`loads`
parses what histories use -- maps, vectors, lists, sets, keywords, symbols,
strings, characters, integers (``N`` big integers, ``0x`` hex), floats
(``M`` big decimals read exactly as :class:`~decimal.Decimal`), ratios
(``1/3`` as :class:`~fractions.Fraction`), ``nil``, ``true``/``false``,
``;`` comments, ``#_`` discards, metadata (``^{...} form``, dropped) and tagged
literals (``#jepsen.history.Op{...}`` reads as the map; the tag is dropped) --
into Python values: maps become dicts, vectors and lists become lists, sets
frozensets, keywords :class:`Keyword` (a ``str`` without the colon), symbols
:class:`Symbol`. Commas are whitespace. ``##NaN``, ``##Inf`` and floats out of
range are refused. A parse error names the line.

:func:`read_edn_history` accepts a file holding either one vector (or list)
of op maps, or one op map per line, and maps each op to :class:`Op` through
:class:`~jepsenlike.history.HistoryBuilder` (the same rules as JSON Lines):
``:type``, ``:f``, ``:value``, ``:process``, ``:time``, ``:index`` (ops are
renumbered densely in file order, because filtered Jepsen histories have gaps
and some have no ``:index`` at all), ``:error`` and ``:node``. Keywords and
strings are interchangeable for ``:type``, ``:f`` and ``:process``; keywords in
values become plain strings (``[:append 3 1]`` -> ``["append", 3, 1]``), sets
sorted lists, maps dicts with string keys. A missing ``:time`` repeats the
previous event's; a ``:time`` earlier than the previous event's is kept and
counted (``History.time_backwards``).

A keyword process (``:nemesis``) is a non-client. Jepsen logs its ops as
``:info`` events: an ``:info`` opens an op (read as the invocation) and the
next ``:info`` of that process with the same ``:f`` closes it; a lone ``:info``
is an invocation that never completes.

Jepsen's *independent* workloads wrap each value as ``[key value]``. With
``independent=True`` the first element becomes the op's ``key``; with
``independent=None`` (the default) that happens when every client read is
invoked with a ``[key nil]`` pair (a plain register's read is invoked with
``nil``), and every read/write/cas value is a pair.

Errors are :class:`HistoryError` as ``file:line: what is wrong``.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from jepsenlike.errors import HistoryError
from jepsenlike.history import History, HistoryBuilder, Op

__all__ = ["Keyword", "Symbol", "dumps", "loads", "read_edn_history", "write_edn_history"]


class Keyword(str):
    """An EDN keyword, without its colon: ``:ok`` reads as ``Keyword("ok")``."""

    def __repr__(self) -> str:
        return f":{str(self)}"


class Symbol(str):
    """An EDN symbol other than nil/true/false."""


_DELIMS = set("()[]{}\"; \t\r\n,")
_INT = re.compile(r"^[+-]?\d+N?$")
_HEX = re.compile(r"^[+-]?0[xX][0-9a-fA-F]+N?$")
_RATIO = re.compile(r"^[+-]?\d+/\d+$")
_FLOAT = re.compile(r"^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?$")
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "formfeed": "\f", "backspace": "\b"}


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.source = source
        self._newlines: list[int] | None = None

    def line(self, i: int | None = None) -> int:
        if self._newlines is None:  # positions of every newline, found once (C speed)
            self._newlines = [m.start() for m in re.finditer("\n", self.s)]
        return bisect.bisect_left(self._newlines, self.i if i is None else i) + 1

    def error(self, msg: str, i: int | None = None) -> HistoryError:
        return HistoryError(f"{self.source}:{self.line(i)}: {msg}")

    def skip_ws(self) -> None:
        s, n = self.s, self.n
        while self.i < n:
            c = s[self.i]
            if c in " \t\r\n,":
                self.i += 1
            elif c == ";":
                j = s.find("\n", self.i)
                self.i = n if j < 0 else j + 1
            elif c == "#" and s.startswith("#_", self.i):
                self.i += 2
                self.read()
            else:
                break

    def at_end(self) -> bool:
        self.skip_ws()
        return self.i >= self.n

    def read(self) -> Any:
        self.skip_ws()
        if self.i >= self.n:
            raise self.error("unexpected end of input")
        s = self.s
        c = s[self.i]
        if c in "([{":
            close = {"(": ")", "[": "]", "{": "}"}[c]
            start = self.i
            self.i += 1
            items = self.read_until(close, start)
            if c == "{":
                if len(items) % 2:
                    raise self.error("a map needs an even number of forms", start)
                try:
                    return {items[k]: items[k + 1] for k in range(0, len(items), 2)}
                except TypeError as e:
                    raise self.error(f"unhashable map key: {e}", start) from None
            return items
        if c in ")]}":
            raise self.error(f"unexpected {c!r}")
        if c == '"':
            return self.read_string()
        if c == "#":
            start = self.i
            if s.startswith("#{", self.i):
                self.i += 2
                items = self.read_until("}", start)
                try:
                    return frozenset(items)
                except TypeError:
                    return items
            if s.startswith("##", self.i):
                self.i += 2
                name = self.read_token()
                raise self.error(
                    f"##{name} is not a finite number; NaN and infinities are refused", start
                )
            self.i += 1
            tag = self.read_token()
            if not tag:
                raise self.error("bad '#' dispatch", start)
            return self.read()  # tagged literal: keep the value, drop the tag
        if c == "^":  # metadata: ^{:a 1} form, ^:kw form, ^Type form -- drop it
            self.i += 1
            self.read()
            return self.read()
        if c == "\\":
            self.i += 1
            tok = self.read_token() or s[self.i : self.i + 1]
            if not tok:
                raise self.error("bad character literal")
            if tok not in _CHARS and len(tok) > 1 and not tok.startswith("u"):
                # a single char followed by more token chars, like \a in \abc: take one
                self.i -= len(tok) - 1
                return tok[0]
            if tok.startswith("u") and len(tok) == 5:
                return chr(int(tok[1:], 16))
            return _CHARS.get(tok, tok)
        start = self.i
        tok = self.read_token()
        if not tok:
            raise self.error(f"unexpected character {c!r}", start)
        return self.atom(tok, start)

    def read_until(self, close: str, start: int) -> list[Any]:
        items: list[Any] = []
        while True:
            self.skip_ws()
            if self.i >= self.n:
                raise self.error(f"unclosed collection (expected {close!r}) starting here", start)
            if self.s[self.i] == close:
                self.i += 1
                return items
            items.append(self.read())

    def read_token(self) -> str:
        j = self.i
        s, n = self.s, self.n
        while j < n and s[j] not in _DELIMS:
            j += 1
        tok = s[self.i : j]
        self.i = j
        return tok

    def read_string(self) -> str:
        start = self.i
        self.i += 1
        out = []
        s, n = self.s, self.n
        while True:
            if self.i >= n:
                raise self.error("unterminated string starting here", start)
            c = s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                self.i += 1
                if self.i >= n:
                    raise self.error("unterminated string starting here", start)
                e = s[self.i]
                if e == "u":
                    out.append(chr(int(s[self.i + 1 : self.i + 5], 16)))
                    self.i += 5
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}.get(e, e))
                self.i += 1
                continue
            out.append(c)
            self.i += 1

    def atom(self, tok: str, start: int) -> Any:
        if tok == "nil":
            return None
        if tok == "true":
            return True
        if tok == "false":
            return False
        if tok[0] == ":":
            if len(tok) == 1:
                raise self.error("empty keyword", start)
            return Keyword(tok[1:])
        if _INT.match(tok):
            return int(tok.rstrip("N"))
        if _FLOAT.match(tok):
            if tok.endswith("M"):  # BigDecimal: exact
                try:
                    return Decimal(tok[:-1])
                except InvalidOperation:  # pragma: no cover - the regex admits only numbers
                    raise self.error(f"bad number {tok!r}", start) from None
            x = float(tok)
            if not math.isfinite(x):
                raise self.error(f"number {tok!r} is out of range (not finite); refused", start)
            return x
        if _RATIO.match(tok):
            num, den = tok.split("/")
            if int(den) == 0:
                raise self.error(f"ratio {tok!r} divides by zero", start)
            return Fraction(int(num), int(den))
        if _HEX.match(tok):
            return int(tok.rstrip("N"), 16)
        if tok[0].isdigit() or (tok[0] in "+-" and len(tok) > 1 and tok[1].isdigit()):
            raise self.error(f"bad number {tok!r}", start)
        return Symbol(tok)


def loads(text: str, source: str = "<edn>") -> Any:
    """Parse exactly one EDN value."""
    p = _Parser(text, source)
    try:
        v = p.read()
    except RecursionError:
        raise p.error("nested too deeply to read") from None
    if not p.at_end():
        raise p.error("more than one value")
    return v


def loads_all(text: str, source: str = "<edn>") -> list[tuple[int, Any]]:
    """Parse every top-level value; returns (line, value) pairs."""
    p = _Parser(text, source)
    out = []
    while not p.at_end():
        line = p.line()
        try:
            out.append((line, p.read()))
        except RecursionError:
            raise p.error("nested too deeply to read", _line_start(text, line)) from None
    return out


def _line_start(text: str, line: int) -> int:
    i = 0
    for _ in range(line - 1):
        i = text.index("\n", i) + 1
    return i


def _plain(v: Any) -> Any:
    """EDN value -> JSON-like value (keywords and symbols become str, sets sorted lists)."""
    if isinstance(v, (Keyword, Symbol)):
        return str(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {(_plain(k) if isinstance(k, (str, int)) else str(_plain(k))): _plain(x) for k, x in v.items()}
    if isinstance(v, frozenset):
        items = [_plain(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    return v


_REGISTER_FS = frozenset(("read", "write", "cas"))


def read_edn_history(path: str | os.PathLike[str], *, independent: bool | None = None) -> History:
    """Read a Jepsen ``history.edn`` (see the module docstring for the mapping).

    Raises:
        HistoryError: ``file:line: what is wrong``.
    """
    p = Path(path)
    src = str(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise HistoryError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise HistoryError(f"{src}: is a directory; give a history file") from None
    except OSError as e:
        raise HistoryError(f"{src}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise HistoryError(
            f"{src}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); EDN is UTF-8"
        ) from None
    forms = loads_all(text, src)
    if len(forms) == 1 and isinstance(forms[0][1], list):
        # one vector of ops: find each op's line by scanning for its opening brace
        line0 = forms[0][0]
        items = forms[0][1]
        lines = _map_lines(text, len(items), line0)
        entries = list(zip(lines, items, strict=False))
    else:
        entries = forms
    raw: list[tuple[int, dict[str, Any]]] = []
    for line, m in entries:
        if not isinstance(m, dict):
            raise HistoryError(
                f"{src}:{line}: expected an op map like {{:type :invoke, :f :read, ...}}, "
                f"got {m!r}"
            )
        raw.append((line, {(str(k) if isinstance(k, str) else k): v for k, v in m.items()}))
    if independent is None:
        independent = _looks_independent([m for _, m in raw])
    builder = HistoryBuilder(src)
    open_f: dict[str, str] = {}  # non-client process -> f of its open :info "invocation"
    last_time = 0
    for index, (line, m) in enumerate(raw):
        builder.add(_op_from_map(m, index, line, src, independent, open_f, last_time), line)
        last_time = builder.last_time
    return builder.finish()


def _op_from_map(
    m: dict[str, Any],
    index: int,
    line: int,
    src: str,
    independent: bool,
    open_f: dict[str, str],
    last_time: int,
) -> Op:
    where = f"{src}:{line}"
    for name in ("type", "f", "process"):
        if name not in m:
            raise HistoryError(f"{where}: missing field :{name}")
    typ = m["type"]
    if not isinstance(typ, str) or str(typ) not in ("invoke", "ok", "fail", "info"):
        raise HistoryError(
            f"{where}: field :type is {typ!r}; expected :invoke, :ok, :fail or :info"
        )
    typ = str(typ)
    f = _plain(m["f"])
    if not isinstance(f, str):
        f = dumps(f)
    if not f:
        raise HistoryError(f"{where}: field :f must not be empty")
    process = m["process"]
    if isinstance(process, str):
        process = str(process)
        if not process:
            raise HistoryError(f"{where}: field :process must not be empty")
        # Jepsen logs a nemesis op as :info events: the first opens it (read as the
        # invocation), the next :info with the same :f closes it. A lone :info is an
        # invocation that never completes; none of this is refused.
        if typ == "info":
            if open_f.get(process) == f:
                del open_f[process]
            else:
                typ = "invoke"
                open_f[process] = f
        elif typ == "invoke":
            open_f[process] = f
        else:
            open_f.pop(process, None)
    elif not isinstance(process, int) or isinstance(process, bool):
        raise HistoryError(
            f"{where}: field :process must be an integer or a keyword such as :nemesis, "
            f"got {process!r}"
        )
    t = m.get("time", last_time)
    if t is None:
        t = last_time
    if not isinstance(t, int) or isinstance(t, bool):
        raise HistoryError(f"{where}: field :time must be an integer (ns), got {t!r}")
    t = max(t, 0)
    value = _plain(m.get("value"))
    key = _plain(m.get("key"))
    if independent and type(process) is int and f in _REGISTER_FS:
        if not (isinstance(value, list) and len(value) == 2):
            raise HistoryError(
                f"{where}: an independent op's :value must be [key value], got {value!r} "
                "(drop --independent for a single-key history)"
            )
        key, value = value
    node = m.get("node")
    return Op(
        index=index,
        time=t,
        process=process,
        type=typ,
        f=f,
        key=key,
        value=value,
        node=None if node is None else str(_plain(node)),
        error=_plain(m.get("error")),
    )


def _looks_independent(maps: list[dict[str, Any]]) -> bool:
    saw_read = False
    for m in maps:
        if isinstance(m.get("process"), str):
            continue
        f = str(m.get("f"))
        if f not in _REGISTER_FS:
            continue
        v = m.get("value")
        if not (isinstance(v, list) and len(v) == 2):
            return False
        if f == "read" and str(m.get("type")) == "invoke":
            saw_read = True
    return saw_read


def _map_lines(text: str, n: int, line0: int) -> list[int]:
    """Best-effort line numbers of the n top-level maps inside one vector."""
    lines = []
    depth = 0
    line = 1
    in_str = False
    esc = False
    for c in text:
        if c == "\n":
            line += 1
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            continue
        if c == '"':
            in_str = True
        elif c in "([{":
            if depth == 1 and c == "{":
                lines.append(line)
            depth += 1
        elif c in ")]}":
            depth -= 1
    lines += [line0] * (n - len(lines))
    return lines[:n]


# ----------------------------------------------------------------------------- writing


def dumps(v: Any, keyword_strings: bool = False) -> str:
    """One value as EDN (dicts -> maps, lists/tuples -> vectors, str -> strings)."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Keyword):
        return f":{v}"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if keyword_strings and re.fullmatch(r"[A-Za-z*+!_?<>=-][A-Za-z0-9*+!_?<>=./-]*", v):
            return f":{v}"
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(dumps(x) for x in v) + "]"
    if isinstance(v, (set, frozenset)):
        return "#{" + " ".join(dumps(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{dumps(k)} {dumps(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as EDN: {v!r}")


def write_edn_history(path: str | os.PathLike[str], history: History | list[Op]) -> None:
    """Write a history as EDN, one op map per line (``:f`` and ``:type`` as keywords).

    Ops with a ``key`` get a ``:key`` entry (not Jepsen's ``[k v]`` wrapping), so
    :func:`read_edn_history` reads back exactly the same ops.
    """
    ops = history.ops if isinstance(history, History) else history
    with open(path, "w", encoding="utf-8") as fh:
        for op in ops:
            fields: list[tuple[str, str]] = [
                ("index", dumps(op.index)),
                ("time", dumps(op.time)),
                ("type", f":{op.type}"),
                ("process", dumps(op.process, keyword_strings=True)),
                ("f", dumps(op.f, keyword_strings=True)),
            ]
            if op.key is not None:
                fields.append(("key", dumps(op.key)))
            fields.append(("value", dumps(op.value)))
            if op.node is not None:
                fields.append(("node", dumps(op.node)))
            if op.error is not None:
                fields.append(("error", dumps(op.error)))
            fh.write("{" + ", ".join(f":{k} {v}" for k, v in fields) + "}\n")
