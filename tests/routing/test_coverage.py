"""Coverage matrix (rows, table, CSV) and replay of tickets against a draft rule set."""

from __future__ import annotations

import csv
import io

import pytest

from hotline.routing import (
    Facts,
    Move,
    ReplayTicket,
    Via,
    coverage,
    coverage_csv,
    coverage_table,
    replay,
)
from tests.routing.builders import make

RULES = """
- {id: pay, owner: augsburg, priority: 10, when: {service: epayment}, route_to: augsburg}
- {id: konto-intern, owner: muenchen, priority: 20, when: {topic: konto, audience: internal},
   route_to: muenchen}
- {id: words, owner: nuernberg, priority: 5, when: {text_any: fehler}, route_to: nuernberg}
"""


def test_coverage_by_service_has_a_row_per_active_origin_service_and_audience():
    rs = make(RULES)
    rows = coverage(rs)
    assert len(rows) == 3 * 5 * 2  # Fürth is inactive
    by_key = {(r.origin_city, r.service, str(r.audience)): r for r in rows}
    pay = by_key[("nuernberg", "epayment", "external")]
    assert (pay.city, pay.rule, pay.via) == ("augsburg", "pay", Via.RULE)
    konto = by_key[("augsburg", "bayernid", "internal")]
    assert (konto.city, konto.rule) == ("muenchen", "konto-intern")
    rest = by_key[("augsburg", "bayernid", "external")]
    assert (rest.city, rest.rule, rest.via) == ("augsburg", None, Via.FALLBACK)
    # Rules that need words in the text cannot decide without a question text.
    assert not any(r.rule == "words" for r in rows)


def test_coverage_by_topic():
    rows = coverage(make(RULES), by="topic")
    assert {r.topic for r in rows} == {"zahlung", "konto", "kfz", "steuer"}
    assert all(r.service is None for r in rows)
    konto = [r for r in rows if r.topic == "konto" and r.audience == "internal"]
    assert {r.city for r in konto} == {"muenchen"}


def test_coverage_rejects_unknown_dimension():
    with pytest.raises(ValueError, match="service' or 'topic"):
        coverage(make(RULES), by="channel")  # type: ignore[arg-type]


def test_coverage_csv_and_table():
    rows = coverage(make(RULES))
    parsed = list(csv.reader(io.StringIO(coverage_csv(rows))))
    assert parsed[0] == ["origin_city", "service", "audience", "city", "rule", "via"]
    assert ["nuernberg", "epayment", "external", "augsburg", "pay", "rule"] in parsed
    assert len(parsed) == len(rows) + 1
    table = coverage_table(rows).splitlines()
    assert table[0].split() == ["origin_city", "service", "audience", "city", "rule", "via"]
    assert set(table[1]) <= {"-", " "}
    assert table[2].split()[4] in ("-", "pay", "konto-intern")
    assert len(table) == len(rows) + 2


def test_replay_lists_tickets_that_would_move():
    draft = make(RULES)
    tickets = [
        ReplayTicket(
            ref="HL-1",
            facts=Facts(origin_city="nuernberg", service="epayment"),
            current_city="nuernberg",
        ),
        ReplayTicket(
            ref="HL-2",
            facts=Facts(origin_city="augsburg", service="epayment"),
            current_city="augsburg",
        ),
        ReplayTicket(ref="HL-3", facts=Facts(origin_city="muenchen"), current_city="augsburg"),
    ]
    assert replay(draft, tickets) == [
        Move(
            ref="HL-1",
            from_city="nuernberg",
            to_city="augsburg",
            rule="pay",
            rule_version=1,
            via=Via.RULE,
        ),
        Move(
            ref="HL-3",
            from_city="augsburg",
            to_city="muenchen",
            rule=None,
            rule_version=None,
            via=Via.FALLBACK,
        ),
    ]
    assert replay(draft, []) == []
