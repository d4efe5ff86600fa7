"""The EDN reader and the Jepsen history.edn importer."""

from __future__ import annotations

import pytest

from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import MODELS, generate
from jepsenlike.edn import Keyword, dumps, loads, read_edn_history, write_edn_history
from jepsenlike.errors import HistoryError
from jepsenlike.history_io import read_history

JEPSEN_SNIPPET = """\
{:type :invoke, :f :write, :value [0 3], :process 0, :time 9781045, :index 0}
{:type :invoke, :f :read, :value [0 nil], :process 1, :time 9837045, :index 1}
{:type :info, :f :start-partition, :value nil, :process :nemesis, :time 10020000, :index 2}
{:type :ok, :f :write, :value [0 3], :process 0, :time 10783045, :index 3}
{:type :ok, :f :read, :value [0 3], :process 1, :time 11016812, :index 4}
{:type :info, :f :start-partition, :value [:isolated {"n1" #{"n2" "n3"}}], :process :nemesis, :time 12000000, :index 5}
; a comment line
{:type :invoke, :f :cas, :value [1 [2 4]], :process 0, :time 12516000, :index 6}
{:type :invoke, :f :write, :value [1 2], :process 2, :time 12600000, :index 7}
{:type :info, :f :cas, :value [1 [2 4]], :process 0, :time 13516000, :index 8, :error :timeout}
{:type :ok, :f :write, :value [1 2], :process 2, :time 13600000, :index 9}
{:type :invoke, :f :read, :value [1 nil], :process 2, :time 14000000, :index 10}
{:type :ok, :f :read, :value [1 4], :process 2, :time 14100000, :index 11}
"""


def test_reader_handles_the_edn_subset_histories_use():
    v = loads(
        '{:a [1 -2 3.5 1e3 nil true false "s\\"q\\n"], :b (1 2), :c #{1 2}, '
        ':d #_ignored :kept, :e \\x, :f sym, "k" #inst "2020"} ; comment'
    )
    assert v[Keyword("a")] == [1, -2, 3.5, 1000.0, None, True, False, 's"q\n']
    assert v[Keyword("b")] == [1, 2]
    assert v[Keyword("c")] == frozenset({1, 2})
    assert v[Keyword("d")] == Keyword("kept")
    assert v[Keyword("e")] == "x"
    assert v[Keyword("f")] == "sym"
    assert v["k"] == "2020"
    assert loads("[1,2,,3]") == [1, 2, 3]
    assert loads("#jepsen.history.Op{:index 0}") == {Keyword("index"): 0}


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("{:a 1\n :b [1 2}", 2, "unexpected '}'"),
        ("[1 2", 1, "unclosed collection"),
        ('\n"abc', 2, "unterminated string"),
        ("{:a}", 1, "even number of forms"),
        ("1x2", 1, "bad number"),
    ],
)
def test_reader_errors_name_the_line(text, line, message):
    with pytest.raises(HistoryError) as e:
        loads(text, "h.edn")
    assert str(e.value).startswith(f"h.edn:{line}: ")
    assert message in str(e.value)


def test_jepsen_snippet_imports_with_independent_keys(tmp_path):
    path = tmp_path / "history.edn"
    path.write_text(JEPSEN_SNIPPET)
    h = read_history(path)  # .edn goes through the importer
    assert len(h) == 12
    assert h[0].key == 0 and h[0].value == 3 and h[0].f == "write" and h[0].time == 9781045
    assert h[1].key == 0 and h[1].value is None
    assert h[2].process == "nemesis" and h[2].type == "invoke"
    assert h[5].type == "info" and h[5].value == ["isolated", {"n1": ["n2", "n3"]}]
    assert h[6].key == 1 and h[6].value == [2, 4]
    assert h[8].error == "timeout"
    r = check_linearizable(h, get_spec("cas-register"))
    assert r.valid is True  # the info cas took effect after the write
    # a read of 3 on key 1 is impossible: the checker sees the keys apart
    bad = tmp_path / "bad.edn"
    bad.write_text(JEPSEN_SNIPPET.replace(":value [1 4]", ":value [1 3]"))
    r = check_linearizable(read_edn_history(bad), get_spec("cas-register"))
    assert r.valid is False and r.details["key"] == 1
    assert r.details["reason"] == "read 3 but the value is 2"  # the info cas need not have happened


def test_independent_values_must_be_pairs(tmp_path):
    bad = tmp_path / "bad.edn"
    bad.write_text(JEPSEN_SNIPPET.replace(":value [0 3], :process 0, :time 9781045", ":value 3, :process 0, :time 9781045"))
    with pytest.raises(HistoryError, match=r"bad.edn:1: an independent op's :value must be \[key value\]"):
        read_edn_history(bad, independent=True)


def test_independent_detection_leaves_plain_registers_alone(tmp_path):
    path = tmp_path / "plain.edn"
    path.write_text(
        "[{:type :invoke, :f :cas, :value [1 2], :process 0}\n"
        " {:type :ok, :f :cas, :value [1 2], :process 0}\n"
        " {:type :invoke, :f :read, :value nil, :process 0}\n"
        " {:type :ok, :f :read, :value 2, :process 0}]\n"
    )
    h = read_edn_history(path)
    assert h[0].key is None and h[0].value == [1, 2]
    assert [op.index for op in h] == [0, 1, 2, 3]  # renumbered densely (no :index, no :time)
    r = check_linearizable(h, get_spec("cas-register", init=1))
    assert r.valid is True


def test_bad_ops_in_a_vector_file_name_their_line(tmp_path):
    path = tmp_path / "v.edn"
    path.write_text(
        "[{:type :invoke, :f :read, :value nil, :process 0}\n"
        " {:type :okay, :f :read, :value 1, :process 0}]\n"
    )
    with pytest.raises(HistoryError, match=r"v.edn:2: field :type is :okay"):
        read_edn_history(path)
    path.write_text("{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :process 1}\n")
    with pytest.raises(HistoryError, match=r"v.edn:2: .*no pending invocation"):
        read_edn_history(path)
    path.write_text("{:type :invoke, :f :read}\n")
    with pytest.raises(HistoryError, match=r"v.edn:1: missing field :process"):
        read_edn_history(path)


@pytest.mark.parametrize("model", MODELS)
def test_round_trip_through_edn(tmp_path, model):
    h = generate(model, 11, n_ops=40, processes=3, keys=["a", "b"], p_info=0.2)
    path = tmp_path / "h.edn"
    write_edn_history(path, h)
    back = read_edn_history(path, independent=False)
    assert back.ops == h.ops


def test_dumps_values():
    assert dumps([None, True, 1, 2.5, "a\"b", {"k": [1]}]) == '[nil true 1 2.5 "a\\"b" {"k" [1]}]'


def test_reader_handles_numbers_metadata_and_refuses_non_finite():
    from decimal import Decimal
    from fractions import Fraction

    v = loads("^{:doc 1} [1/3 -4/6 12345678901234567890123N 1.25M 0x1f ^:tag :k #_#_ 1 2 3]")
    assert v == [Fraction(1, 3), Fraction(-2, 3), 12345678901234567890123, Decimal("1.25"), 31,
                 Keyword("k"), 3]
    assert isinstance(v[0], Fraction) and isinstance(v[3], Decimal)
    for text, message in [
        ("[1 ##NaN]", "##NaN is not a finite number"),
        ("##-Inf", "##-Inf is not a finite number"),
        ("1e999", "out of range"),
        ("1/0", "divides by zero"),
        ("[" * 2000 + "]" * 2000, "nested too deeply"),
        ("[1 2] 3", "more than one value"),
        ("", "unexpected end of input"),
        ("#_", "unexpected end of input"),
    ]:
        with pytest.raises(HistoryError, match=message):
            loads(text, "x.edn")


def test_history_values_are_json_like(tmp_path):
    path = tmp_path / "h.edn"
    path.write_text(
        '{:type :invoke, :f :read, :process 0, :value nil}\n'
        '{:type :ok, :f :read, :process 0, :value #{3 1 2 1}, :error {:why [:a "b"], 7 #{}}}\n'
    )
    h = read_edn_history(path)
    assert h[1].value == [1, 2, 3]
    assert h[1].error == {"why": ["a", "b"], 7: []}
    assert type(h[1].error["why"][0]) is str  # not a Keyword subclass


JEPSEN_LOG = (
    "INFO  jepsen.core - Running test\n"
    "INFO  jepsen.util - 0\t:invoke\t:write\t1\n"
    "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 0\t:ok\t:write\t1\n"
    "INFO  jepsen.util - 1\t:ok\t:read\t1\n"
    "INFO  jepsen.util - 2\t:invoke\t:cas\t[1 2]\n"
    "INFO  jepsen.util - 2\t:info\t:cas\t:timed-out\n"
    "INFO  jepsen.util - 0\t:invoke\t:cas\t[5 6]\n"
    "INFO  jepsen.util - 0\t:fail\t:cas\t[5 6]\n"
    "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 3\t:ok\t:read\t2\n"
)


def test_jepsen_text_log_is_read_and_checked(tmp_path):
    # Jepsen's text log (Knossos's and Porcupine's etcd_NNN.log shape), sniffed by content
    path = tmp_path / "run.log"
    path.write_text(JEPSEN_LOG)
    h = read_history(path)
    assert len(h) == 10  # the jepsen.core line is not an op
    assert (h[0].process, h[0].type, h[0].f, h[0].value) == (0, "invoke", "write", 1)
    assert h[4].value == [1, 2] and h[5].type == "info" and h[5].value == "timed-out"
    # the timed-out cas may have happened: read 2 needs it
    assert check_linearizable(h, get_spec("cas-register")).valid is True
    bad = tmp_path / "bad.log"
    bad.write_text(JEPSEN_LOG.replace(":ok\t:read\t2", ":ok\t:read\t6"))
    r = check_linearizable(read_history(bad), get_spec("cas-register"))
    assert r.valid is False  # the failed cas to 6 never happened
    empty = tmp_path / "none.log"
    empty.write_text("INFO  jepsen.util - 0\t:invoke\n")
    with pytest.raises(HistoryError, match="no op lines"):
        read_history(empty)


PORCUPINE_KV = """\
{:process 0, :type :invoke, :f :put, :key "a", :value "x"}
{:process 0, :type :ok, :f :put, :key "a", :value "x"}
{:process 1, :type :invoke, :f :append, :key "a", :value "y"}
{:process 1, :type :ok, :f :append, :key "a", :value "y"}
{:process 0, :type :invoke, :f :get, :key "a", :value nil}
{:process 0, :type :ok, :f :get, :key "a", :value "xy"}
{:process 0, :type :invoke, :f :get, :key "b", :value nil}
{:process 0, :type :ok, :f :get, :key "b", :value ""}
"""


def test_kv_get_put_are_read_write(tmp_path):
    # Porcupine's kv shape: get/put/append with a :key field, keys start at ""
    path = tmp_path / "kv.edn"
    path.write_text(PORCUPINE_KV)
    h = read_history(path)
    assert check_linearizable(h, get_spec("kv", init="")).valid is True
    # without --init '""' a key starts at null, and get b -> "" is wrong
    assert check_linearizable(h, get_spec("kv")).valid is False
    path.write_text(PORCUPINE_KV.replace('"xy"', '"yx"'))
    assert check_linearizable(read_history(path), get_spec("kv", init="")).valid is False
