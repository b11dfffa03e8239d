"""The mscgen export, and its reader: arrows by kind, quoting, and a round trip."""

from __future__ import annotations

import pytest

from ion.core.observe.arcs import Arc
from ion.core.observe.msc import label_of
from ion.core.observe.mscgen import MscgenError, parse_mscgen, quote, to_mscgen, unquote
from tests.core.observe.charts import arc, every_kind

ODD = ['he said "hi"', "back\\slash", 'both \\" mixed', "two\nlines", "", "ünïcode ✓", "a;b,c[d]=e"]


def test_w12_every_kind_survives_a_round_trip_names_with_quotes_and_backslashes() -> None:
    """W12: as many arcs come back as went out, each with its ends, kind and
    label; entities keep their ids and names, quotes and backslashes too."""
    chart = every_kind() + [
        arc(1.0, 'q"uo\\te.4@c1', "hello.1@c1", "request", "request", 'op "x" \\ y'),
        arc(1.1, "hello.1@c1", 'q"uo\\te.4@c1', "reply", "inform_result", "result"),
    ]
    names = {'q"uo\\te.4@c1': 'q"uo\\te\nnew'}
    back = parse_mscgen(to_mscgen(chart, names=names))
    assert len(back.arcs) == len(chart)
    for sent, got in zip(chart, back.arcs, strict=True):
        assert (got["src"], got["kind"], got["label"]) == (sent.src, sent.kind, label_of(sent))
        assert got["dst"] == (sent.src if sent.kind == "event" else sent.dst)
    entities = {e["name"]: e["label"] for e in back.entities}
    assert entities['q"uo\\te.4@c1'] == 'q"uo\\te\nnew' and entities["store"] == "store"
    assert set(entities) == {a.src for a in chart} | {a.dst for a in chart if a.kind != "event"}


def test_each_kind_has_its_arrow_and_a_failure_is_red() -> None:
    lines = to_mscgen(every_kind()).splitlines()
    arcs_text = [ln.strip() for ln in lines if " [label=" in ln and ("=>" in ln or ">>" in ln
                 or "->" in ln or "-x" in ln or " box " in ln)]  # fmt: skip
    assert arcs_text[0] == '"shell.2@c1" => "hello.1@c1" [label="hello"];'
    assert arcs_text[1] == '"hello.1@c1" >> "shell.2@c1" [label="result"];'
    assert arcs_text[3] == ('"hello.1@c1" >> "shell.2@c1" [label="result ERROR", '
                            'linecolor="red", textcolor="red"];')  # fmt: skip
    assert arcs_text[4] == '"hello.1@c1" box "hello.1@c1" [label="proc.lifecycle"];'
    assert arcs_text[5] == '"sup.3@c2" -x "hello.1@c1" [label="sys_exit"];'
    assert arcs_text[7] == '"sup.3@c2" -> "store" [label="note"];'
    assert lines[1] == "msc {" and lines[-1] == "}"


def test_quoting_round_trips_any_text() -> None:
    for text in ODD:
        assert unquote(quote(text)) == text
        assert "\n" not in quote(text)


def test_the_reader_takes_reverse_arrows_comments_and_arcs_side_by_side() -> None:
    text = """
    # a comment
    msc {
      hscale = 2, arcgradient = "4";   // options
      a [label="A"], "b c";
      /* two arcs on one row */
      "b c" <= a [label="get"], a << "b c";
      a box a, a -x "b c" [ label = "gone" , linecolour = "red" ];
    }
    """
    chart = parse_mscgen(text)
    assert chart.options == {"hscale": "2", "arcgradient": "4"}
    assert [(e["name"], e["label"]) for e in chart.entities] == [("a", "A"), ("b c", "b c")]
    assert [(x["src"], x["arrow"], x["dst"], x["kind"]) for x in chart.arcs] == [
        ("a", "=>", "b c", "request"),
        ("b c", ">>", "a", "reply"),
        ("a", "box", "a", "event"),
        ("a", "-x", "b c", "failure"),
    ]
    assert chart.arcs[0]["label"] == "get" and chart.arcs[3]["attrs"]["linecolour"] == "red"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("msc { a; a => b; }", "line 1: entity 'b' is not declared"),
        ("msc { a, b; a => b ", "expected ',' or ';' at the end"),
        ("msc { a; } extra", "expected nothing after '}' at line 1: 'extra'"),
        ("graph { }", "expected 'msc'"),
        ('msc {\n a [label="x];\n}', "line 2: unexpected"),
        ("msc { a [label=]; }", "expected a name at line 1: ']'"),
    ],
)
def test_what_the_reader_does_not_know_is_an_error_saying_where(text: str, why: str) -> None:
    with pytest.raises(MscgenError, match=why.replace("[", r"\[").replace("(", r"\(")):
        parse_mscgen(text)


def test_no_arcs_is_an_empty_chart() -> None:
    chart = parse_mscgen(to_mscgen([]))
    assert chart.arcs == [] and chart.entities == [] and chart.options == {"hscale": "1"}


def test_a_request_that_failed_is_a_red_request() -> None:
    failed = Arc(ts=0.0, src="a.1@c", dst="b.2@c", kind="failure", performative="request",
                 op="x", conv_id="k", protocol="rpc", status="ERROR")  # fmt: skip
    (got,) = parse_mscgen(to_mscgen([failed])).arcs
    assert (got["arrow"], got["kind"], got["label"]) == ("=>", "failure", "x ERROR")
