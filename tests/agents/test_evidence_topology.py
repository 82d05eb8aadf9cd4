"""Unit tests of agents.evidence.topology: origin versus victims, mentions."""

from agents.evidence.topology import CallGraph, locate_origin, mentioned_services

TOPO = [{"name": "web", "calls": ["api"]}, {"name": "api", "calls": ["db", "cache"]}, {"name": "db", "calls": []},
        {"name": "cache", "calls": []}]


def test_mentions_whole_words_only():
    names = ["db", "api", "payments", "payments-db"]
    assert mentioned_services("Connection refused: payments-db:5432", names, "api") == {"payments-db"}
    assert mentioned_services("Upstream payments returned 500", names, "api") == {"payments"}
    assert mentioned_services("api call ok", names, "api") == set()


def test_deepest_anomalous_callee_is_origin_even_if_alerts_are_upstream():
    graph = CallGraph(TOPO)
    anomalies = {"web": {"score": 0.9, "onset": 100.0}, "api": {"score": 0.9, "onset": 100.0},
                 "db": {"score": 0.7, "onset": 100.0}}
    ranked = locate_origin(graph, anomalies, {})
    assert ranked[0]["service"] == "db"
    assert set(ranked[0]["explains"]) == {"web", "api"}
    assert "db" in next(c for c in ranked if c["service"] == "api")["victim_of"]


def test_named_callee_without_telemetry_is_a_candidate():
    graph = CallGraph([])
    graph.add_edge("api", "ledger")
    ranked = locate_origin(graph, {"api": {"score": 0.8, "onset": 100.0}}, {"api": {"ledger": 12.0}})
    assert ranked[0]["service"] == "ledger"


def test_later_callee_does_not_explain_an_earlier_caller():
    graph = CallGraph(TOPO)
    anomalies = {"api": {"score": 0.9, "onset": 100.0}, "cache": {"score": 0.5, "onset": 1000.0}}
    ranked = locate_origin(graph, anomalies, {})
    assert ranked[0]["service"] == "api"


def test_a_callee_naming_its_caller_is_neither_edge_nor_blame():
    from agents.evidence.topology import against_topology

    graph = CallGraph([{"name": "web", "calls": ["api"]}, {"name": "api", "calls": ["db"]}, {"name": "db"}])
    mentions = {"web": {"api": 28.0}, "api": {"web": 2.0}, "db": {"web": 3.0, "cache": 4.0}}
    kept = against_topology(graph, mentions)
    assert kept == {"web": {"api": 28.0}, "db": {"cache": 4.0}}
