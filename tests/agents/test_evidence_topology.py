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


CHAIN = [{"name": "edge", "calls": ["worker"]}, {"name": "worker", "calls": ["coupons"]},
         {"name": "coupons", "calls": ["tenant"]}, {"name": "tenant", "calls": []}]


def _saturated_caller_world():
    # A surge: the callers' CPU moves first (worker's cron spike reaches its limit in the stretch, an own-fault
    # signature), then tenant fails and each caller's errors name the callee below it.
    anomalies = {"edge": {"score": 0.7, "onset": 0.0}, "worker": {"score": 2.0, "onset": 60.0, "own_fault": 0.7},
                 "coupons": {"score": 1.3, "onset": 600.0}, "tenant": {"score": 1.4, "onset": 600.0}}
    mentions = {"edge": {"worker": 90.0}, "worker": {"coupons": 160.0}, "coupons": {"tenant": 260.0}}
    return anomalies, mentions


def test_an_own_fault_caller_is_still_the_victim_of_the_callee_its_errors_name():
    anomalies, mentions = _saturated_caller_world()
    ranked = {c["service"]: c for c in locate_origin(CallGraph(CHAIN), anomalies, mentions)}
    assert ranked["worker"]["victim_of"] == ["coupons"]
    # Without naming it, an own fault still keeps a service from being its callees' victim ...
    quiet = {k: v for k, v in mentions.items() if k != "worker"}
    ranked = {c["service"]: c for c in locate_origin(CallGraph(CHAIN), anomalies, quiet)}
    assert ranked["worker"]["victim_of"] == []
    # ... and so does naming a callee that fails much less clearly than it does,
    faint = {**anomalies, "coupons": {"score": 0.4, "onset": 600.0}}
    ranked = {c["service"]: c for c in locate_origin(CallGraph(CHAIN), faint, mentions)}
    assert ranked["worker"]["victim_of"] == []
    # ... or an own fault its traces show (a delay on the path to it, errors it wrote first).
    traced = {**anomalies, "worker": {**anomalies["worker"], "families": {"first_error": 1.4}}}
    ranked = {c["service"]: c for c in locate_origin(CallGraph(CHAIN), traced, mentions)}
    assert ranked["worker"]["victim_of"] == []


def test_callers_that_name_their_way_down_to_the_origin_are_explained_despite_early_series():
    anomalies, mentions = _saturated_caller_world()
    ranked = locate_origin(CallGraph(CHAIN), anomalies, mentions)
    assert ranked[0]["service"] == "tenant"
    assert ranked[0]["explains"] == ["coupons", "edge", "worker"]
    # A caller that went bad earlier and names nobody is still not explained by a later callee.
    silent = {"coupons": {"tenant": 260.0}}
    ranked = {c["service"]: c for c in locate_origin(CallGraph(CHAIN), anomalies, silent)}
    assert ranked["tenant"]["explains"] == ["coupons"]
