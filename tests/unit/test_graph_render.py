"""Drawing anomaly cycles as Graphviz text and as SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from jepsenlike.checkers.graph import check_history
from jepsenlike.history import History

SVG = "{http://www.w3.org/2000/svg}"


def _g_single() -> History:
    rows = [
        (0, "invoke", [["r", "x", None], ["r", "y", None]]),
        (1, "invoke", [["append", "x", 1], ["append", "y", 2]]),
        (1, "ok", [["append", "x", 1], ["append", "y", 2]]),
        (0, "ok", [["r", "x", []], ["r", "y", [2]]]),
        (2, "invoke", [["r", "x", None]]),
        (2, "ok", [["r", "x", [1]]]),
    ]
    return History.from_ops(
        [dict(index=i, time=i, process=p, type=t, f="txn", value=v) for i, (p, t, v) in enumerate(rows)]
    )


def test_dot_output_has_one_cluster_per_cycle(tmp_path):
    out = tmp_path / "g.dot"
    r = check_history(_g_single(), "list-append", graph_out=str(out))
    text = out.read_text()
    cycles = [a for recs in r.details["anomalies"].values() for a in recs if a.get("steps")]
    assert text.startswith("digraph anomalies {") and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_") == len(cycles) >= 1
    assert 'label="rw"' in text and 'label="wr"' in text
    assert "does not yet contain" in text  # the per-edge explanation as a tooltip


def test_svg_output_is_well_formed_with_labelled_edges(tmp_path):
    out = tmp_path / "g.svg"
    r = check_history(_g_single(), "list-append", graph_out=str(out))
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    cycles = [a for recs in r.details["anomalies"].values() for a in recs if a.get("steps")]
    panels = root.findall(f"{SVG}g[@class='cycle']")
    assert len(panels) == len(cycles)
    edges = root.findall(f".//{SVG}g[@class='edge']")
    assert len(edges) == sum(len(c["steps"]) for c in cycles)
    labels = {e.find(f"{SVG}text").text for e in edges}
    assert {"rw", "wr"} <= labels
    nodes = root.findall(f".//{SVG}g[@class='node']")
    assert len(nodes) == sum(len(c["txns"]) for c in cycles)
    # nodes on a circle do not overlap
    centres = [(float(n.find(f"{SVG}circle").get("cx")), float(n.find(f"{SVG}circle").get("cy")))
               for n in nodes[: len(cycles[0]["txns"])]]
    assert len(set(centres)) == len(centres)


def test_svg_for_a_valid_history_says_so(tmp_path):
    out = tmp_path / "g.svg"
    h = History.from_ops([
        dict(index=0, time=0, process=0, type="invoke", f="txn", value=[["append", "x", 1]]),
        dict(index=1, time=1, process=0, type="ok", f="txn", value=[["append", "x", 1]]),
    ])
    assert check_history(h, "list-append", graph_out=str(out)).valid is True
    assert "no anomaly cycles" in out.read_text()
    ET.parse(out)
