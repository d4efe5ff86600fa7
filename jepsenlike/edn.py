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

:func:`read_jepsen_log` reads Jepsen's text log (the ``jepsen.util`` lines
``process<TAB>:type<TAB>:f<TAB>value``, as in Knossos's and Porcupine's etcd
test data): each field is parsed as EDN and the op goes through the same
mapping as an EDN op map; other log lines are skipped.

Errors are :class:`HistoryError` as ``file:line: what is wrong``.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from jepsenlike.errors import HistoryError
from jepsenlike.history import History, HistoryBuilder, Op

__all__ = [
    "Keyword", "Symbol", "dumps", "loads", "read_edn_history", "read_jepsen_log",
    "write_edn_history",
]


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
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
#: nesting deeper than this is refused (as JSON Lines are): checkers recurse into values
MAX_DEPTH = 1024

# One token, after any whitespace, commas and comments. The groups are tried in order.
_TOKEN = re.compile(
    r"""(?:[\s,]+|;[^\n]*)*
    (?:
      (?P<atom>[^\s,()\[\]{}";\\#^][^\s,()\[\]{}";]*)
     |(?P<open>[\[({])
     |(?P<close>[\])}])
     |(?P<str>"(?:[^"\\]|\\.)*")
     |(?P<set>\#\{)
     |(?P<disc>\#_)
     |(?P<tag>\#\#?[^\s,()\[\]{}";]*)
     |(?P<meta>\^)
     |(?P<char>\\(?:u[0-9a-fA-F]{4}|newline|space|tab|return|formfeed|backspace|.))
     |(?P<end>\Z)
    )""",
    re.X | re.S,
)
_WS = re.compile(r"(?:[\s,]+|;[^\n]*)*")
_CLOSE = {"[": "]", "(": ")", "{": "}", "#{": "}"}

# frame kinds on the parser's stack
_COLL, _DISCARD, _TAG, _META = 0, 1, 2, 3


class _Parser:
    """An iterative EDN reader: one regular expression finds the tokens, a stack builds values.

    No recursion, so nesting is limited by :data:`MAX_DEPTH`, not by Python's
    stack. Prefix forms (``#_``, ``#tag``, ``^meta``) are stack frames that
    consume the next value(s). Line numbers are computed only for messages.
    """

    def __init__(self, text: str, source: str, *, plain: bool = False) -> None:
        self.s = text
        self.source = source
        self.plain = plain  # keywords and symbols as str, sets as sorted lists (JSON-like)
        self._newlines: list[int] | None = None
        self._atoms: dict[str, Any] = {"nil": None, "true": True, "false": False}

    def line(self, i: int) -> int:
        if self._newlines is None:  # positions of every newline, found once (C speed)
            self._newlines = [m.start() for m in re.finditer("\n", self.s)]
        return bisect.bisect_left(self._newlines, i) + 1

    def error(self, msg: str, i: int) -> HistoryError:
        return HistoryError(f"{self.source}:{self.line(i)}: {msg}")

    def parse(self, *, one: bool = False) -> tuple[list[tuple[int, Any]], list[int]]:
        """Every top-level value with its start offset, and (when the input is one vector
        or list) the start offsets of that collection's items."""
        s = self.s
        out: list[tuple[int, Any]] = []
        stack: list[list[Any]] = []  # [kind, start, payload, close-or-state]
        depth = 0
        item_pos: list[int] = []
        pos = 0
        atom = self.atom
        atoms_get = self._atoms.get
        plain = self.plain
        missing = _MISSING
        for m in _TOKEN.finditer(s):
            if m.start() != pos:  # finditer skipped something no token matches
                raise self.bad_token(_WS.match(s, pos).end())  # type: ignore[union-attr]
            group = m.lastgroup
            start = m.start(group)  # type: ignore[arg-type]
            pos = m.end()
            if group == "atom":
                tok = m.group(group)
                value = atoms_get(tok, missing)
                if value is missing:
                    value = int(tok) if tok.isdigit() and tok.isascii() else atom(tok, start)
            elif group == "open" or group == "set":
                opener = m.group(group)
                depth += 1
                if depth > MAX_DEPTH:
                    raise self.error(f"nested too deeply (more than {MAX_DEPTH:,} levels)", start)
                if depth == 1:
                    item_pos.clear()  # the items of this outermost collection, from here
                stack.append([_COLL, start, [], opener])
                continue
            elif group == "close":
                c = m.group(group)
                if not stack or stack[-1][0] != _COLL or _CLOSE[stack[-1][3]] != c:
                    raise self.error(f"unexpected {c!r}", start)
                _, start, items, opener = stack.pop()
                depth -= 1
                if opener == "{":
                    if len(items) % 2:
                        raise self.error("a map needs an even number of forms", start)
                    try:
                        value = dict(zip(items[::2], items[1::2], strict=True))
                    except TypeError as e:
                        raise self.error(f"unhashable map key: {e}", start) from None
                    if plain and not all(type(k) is str or type(k) is int for k in items[::2]):
                        value = {k if type(k) in (str, int) else str(k): v
                                 for k, v in value.items()}
                elif opener == "#{":
                    if plain:
                        value = _sorted(items)
                    else:
                        try:
                            value = frozenset(items)
                        except TypeError:
                            value = items
                else:
                    value = items
            elif group == "str":
                tok = m.group(group)
                value = tok[1:-1] if "\\" not in tok else _ESCAPE.sub(_unescape, tok[1:-1])
            elif group == "disc":
                stack.append([_DISCARD, start, None, None])
                continue
            elif group == "tag":
                tag = m.group(group)
                if tag.startswith("##"):
                    raise self.error(
                        f"{tag} is not a finite number; NaN and infinities are refused", start
                    )
                if len(tag) == 1:
                    raise self.error("bad '#' dispatch", start)
                stack.append([_TAG, start, None, None])
                continue
            elif group == "meta":
                stack.append([_META, start, None, 0])
                continue
            elif group == "char":
                tok = m.group(group)[1:]
                value = chr(int(tok[1:], 16)) if len(tok) == 5 and tok[0] == "u" else _CHARS.get(
                    tok, tok)
            else:  # end of input
                if stack:
                    kind, fstart, _, opener = stack[-1]
                    if kind == _COLL:
                        raise self.error(
                            f"unclosed collection (expected {_CLOSE[opener]!r}) starting here",
                            fstart,
                        )
                    raise self.error("unexpected end of input", len(s))
                return out, item_pos
            # hand the finished value to whatever is waiting for it
            while True:
                if not stack:
                    if one and out:
                        raise self.error("more than one value", start)
                    out.append((start, value))
                    break
                frame = stack[-1]
                kind = frame[0]
                if kind == _COLL:
                    frame[2].append(value)
                    if depth == 1:
                        item_pos.append(start)
                    break
                if kind == _DISCARD:
                    stack.pop()
                    break
                if kind == _TAG:  # keep the value, drop the tag
                    stack.pop()
                    continue
                if frame[3] == 0:  # metadata: drop it, wait for the value it annotates
                    frame[3] = 1
                    break
                stack.pop()
        raise self.bad_token(pos)  # pragma: no cover - the end of input always matches

    def bad_token(self, i: int) -> HistoryError:
        if i < len(self.s) and self.s[i] == '"':
            return self.error("unterminated string starting here", i)
        return self.error(f"unexpected character {self.s[i : i + 1]!r}", i)

    def atom(self, tok: str, start: int) -> Any:
        try:
            return self._atoms[tok]
        except KeyError:
            pass
        c = tok[0]
        if c == ":":
            if len(tok) == 1:
                raise self.error("empty keyword", start)
            v: Any = tok[1:] if self.plain else Keyword(tok[1:])
            self._atoms[tok] = v
            return v
        if c.isdigit() or (c in "+-" and len(tok) > 1 and tok[1].isdigit()):
            return self.number(tok, start)
        v = tok if self.plain else Symbol(tok)
        self._atoms[tok] = v
        return v

    def number(self, tok: str, start: int) -> Any:
        if _INT.match(tok):
            return int(tok.rstrip("N"))
        if _FLOAT.match(tok):
            if tok.endswith("M"):  # BigDecimal: exact
                return Decimal(tok[:-1])
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
        raise self.error(f"bad number {tok!r}", start)


_MISSING = object()


def _show(v: Any) -> str:
    """A value as EDN for a message (names read as keywords: ``:okay``)."""
    try:
        return dumps(v, keyword_strings=True)
    except TypeError:
        return repr(v)


def _sorted(items: list[Any]) -> list[Any]:
    """A set's elements in a stable order (by value, or by repr for mixed types)."""
    unique = list(dict.fromkeys(items)) if all(_hashable(x) for x in items) else items
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=repr)


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _unescape(m: re.Match[str]) -> str:
    e = m.group(1)
    if len(e) == 5:
        return chr(int(e[1:], 16))
    return _ESCAPES.get(e, e)


def loads(text: str, source: str = "<edn>") -> Any:
    """Parse exactly one EDN value."""
    p = _Parser(text, source)
    values, _ = p.parse(one=True)
    if not values:
        raise p.error("unexpected end of input", len(text))
    return values[0][1]


def loads_all(text: str, source: str = "<edn>") -> list[tuple[int, Any]]:
    """Parse every top-level value; returns (line, value) pairs."""
    p = _Parser(text, source)
    values, _ = p.parse()
    return [(p.line(start), v) for start, v in values]


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
    parser = _Parser(text, src, plain=True)
    try:
        forms, item_pos = parser.parse()
    except RecursionError:  # pragma: no cover - the parser does not recurse
        raise HistoryError(f"{src}: nested too deeply to read") from None
    if len(forms) == 1 and isinstance(forms[0][1], list):
        # one vector of ops: each op's line is where its item starts
        items = forms[0][1]
        lines = [parser.line(i) for i in item_pos] if len(item_pos) == len(items) else []
        lines += [parser.line(forms[0][0])] * (len(items) - len(lines))
        entries = list(zip(lines, items, strict=True))
    else:
        entries = [(parser.line(i), m) for i, m in forms]
    raw: list[tuple[int, dict[str, Any]]] = []
    for line, m in entries:
        if not isinstance(m, dict):
            raise HistoryError(
                f"{src}:{line}: expected an op map like {{:type :invoke, :f :read, ...}}, "
                f"got {m!r}"
            )
        raw.append((line, m))
    return _build(raw, src, independent)


#: One op in Jepsen's text log (``jepsen.log``, Knossos's and Porcupine's
#: ``etcd_NNN.log``): ``INFO  jepsen.util - 3<TAB>:invoke<TAB>:read<TAB>nil``.
LOG_LINE = re.compile(r"^\S+\s+jepsen\.util\s+-\s+([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")


def read_jepsen_log(path: str | os.PathLike[str], *, independent: bool | None = None) -> History:
    """Read the ops of Jepsen's text log (``process<TAB>:type<TAB>:f<TAB>value``
    after ``jepsen.util -``); every field is EDN; other log lines are skipped.

    Raises:
        HistoryError: ``file:line: what is wrong``.
    """
    p = Path(path)
    src = str(p)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise HistoryError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise HistoryError(f"{src}: is a directory; give a history file") from None
    except UnicodeDecodeError as e:
        raise HistoryError(f"{src}: not UTF-8 text at byte {e.start}") from None
    except OSError as e:
        raise HistoryError(f"{src}: cannot read: {e.strerror or e}") from None
    raw: list[tuple[int, dict[str, Any]]] = []
    for line, row in enumerate(text.splitlines(), 1):
        m = LOG_LINE.match(row)
        if m is None:
            continue
        where = f"{src}:{line}"
        fields = [loads(x, where) for x in m.groups()]
        raw.append((line, dict(zip(("process", "type", "f", "value"), fields, strict=True))))
    if not raw:
        raise HistoryError(
            f"{src}: no op lines like 'INFO  jepsen.util - 3<TAB>:invoke<TAB>:read<TAB>nil'"
        )
    return _build(raw, src, independent)


def _build(raw: list[tuple[int, dict[str, Any]]], src: str, independent: bool | None) -> History:
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
            f"{where}: field :type is {_show(typ)}; expected :invoke, :ok, :fail or :info"
        )
    typ = str(typ)
    f = m["f"]
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
            f"got {_show(process)}"
        )
    t = m.get("time", last_time)
    if t is None:
        t = last_time
    if not isinstance(t, int) or isinstance(t, bool):
        raise HistoryError(f"{where}: field :time must be an integer (ns), got {_show(t)}")
    t = max(t, 0)
    value = m.get("value")
    key = m.get("key")
    if independent and type(process) is int and f in _REGISTER_FS:
        if not (isinstance(value, list) and len(value) == 2):
            raise HistoryError(
                f"{where}: an independent op's :value must be [key value], got {_show(value)} "
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
        node=None if node is None else str(node),
        error=m.get("error"),
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
