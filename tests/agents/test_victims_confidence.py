"""An origin whose own errors blame another failing candidate ranks lower and is less sure (issue #3)."""

from agents.evidence import calibration, ranking


def _origin(service, score, *, named_by=(), onset=1000.0, victim_of=(), explains=()):
    return {"service": service, "score": score, "victim_of": list(victim_of), "explains": list(explains),
            "named_by": list(named_by), "named_near": [], "onset": onset, "strength": 1.5, "own_fault": 0.0}


def _rank(origins):
    ctx = {"alerts": [], "missing_sources": []}
    sig = {"services": {}, "series": [], "templates": []}
    cor = {"origins": origins, "changes": [], "neighbours": [], "capacity_services": []}
    return ranking.rank(ctx, sig, cor, [])


def test_top_origin_blaming_a_failing_candidate_is_less_sure():
    # "checkout" ranks first by far, but its own errors name "pg-orders", whose metrics moved as early.
    blamed = _rank([_origin("checkout", 5.0, named_by=["web"], explains=["web"]),
                    _origin("pg-orders", 2.8, named_by=["checkout"], onset=990.0)])
    # The same ranking where the second candidate is named by someone else.
    plain = _rank([_origin("checkout", 5.0, named_by=["web"], explains=["web"]),
                   _origin("pg-orders", 2.8, named_by=["web"], onset=990.0)])
    assert blamed[0]["service"] == plain[0]["service"] == "checkout"
    assert blamed[0]["features"]["blames_failing"] == 1.0
    assert plain[0]["features"]["blames_failing"] == 0.0
    assert blamed[0]["confidence"] < plain[0]["confidence"]
    assert any("errors name pg-orders" in c["summary"] for c in blamed[0]["counter_evidence"])
    assert not any("errors name" in c["summary"] for c in plain[0]["counter_evidence"])


def test_callee_named_by_the_leading_victim_outranks_it():
    # checkout leads pg-orders by less than the penalty; its errors name pg-orders, which failed first.
    ranked = _rank([_origin("checkout", 3.2, named_by=["web"], explains=["web"], victim_of=["pg-orders"]),
                    _origin("pg-orders", 3.2 - ranking.BLAME_PENALTY + 0.2, named_by=["checkout"], onset=990.0,
                            explains=["checkout"])])
    assert ranking.BLAME_PENALTY > 0
    assert [h["service"] for h in ranked[:2]] == ["pg-orders", "checkout"]
    assert ranked[0]["change_id"] is None and ranked[0]["category"] == "dependency"


def test_callee_that_failed_only_later_is_no_blame():
    # pg-orders' own onset comes after checkout's: checkout's errors naming it do not make checkout a victim.
    ranked = _rank([_origin("checkout", 3.2, named_by=["web"], explains=["web"]),
                    _origin("pg-orders", 2.8, named_by=["checkout"], onset=1300.0)])
    assert ranked[0]["service"] == "checkout"
    assert ranked[0]["features"]["blames_failing"] == 0.0


def _rank_with_changes(origins, changes):
    ctx = {"alerts": [], "missing_sources": []}
    sig = {"services": {}, "series": [], "templates": []}
    cor = {"origins": origins, "changes": changes, "neighbours": [], "capacity_services": []}
    return ranking.rank(ctx, sig, cor, [])


def _change(cid, service, score):
    return {"id": cid, "service": service, "kind": "deploy", "score": score, "position": "before",
            "reasons": ["deployed 3 min before the onset"], "against": []}


def test_silent_callee_named_by_an_origin_without_a_change_ranks_just_above_it():
    # checkout leads by far, but its errors name tax-api, which has no telemetry at all (a third-party API);
    # topology.locate_origin makes a service that names a callee its victim unless it has a fault of its own.
    ranked = _rank([_origin("checkout", 3.2, named_by=["web"], explains=["web"], victim_of=["tax-api"]),
                    _origin("tax-api", 0.9, named_by=["checkout"], onset=None)])
    assert [(h["service"], h["change_id"]) for h in ranked[:2]] == [("tax-api", None), ("checkout", None)]
    assert ranked[0]["category"] == "dependency"
    # Its confidence rests on its namer's strength, not on the 0.5 a bare name gets.
    assert ranked[0]["features"]["origin_strength"] == 1.5
    assert any("checkout errors name tax-api" in e["summary"] for e in ranked[0]["evidence"])
    # Named by someone else than the leading origin: no promotion.
    plain = _rank([_origin("checkout", 3.2, named_by=["web"], explains=["web"]),
                   _origin("tax-api", 0.9, named_by=["web"], onset=None)])
    assert plain[0]["service"] == "checkout"


def test_origin_with_its_own_change_keeps_the_lead_over_a_silent_callee():
    # checkout's own deploy explains why its calls to tax-api fail (a bad endpoint, a broken client).
    origins = [_origin("checkout", 3.2, named_by=["web"], explains=["web"]),
               _origin("tax-api", 0.9, named_by=["checkout"], onset=None)]
    silent = _rank_with_changes(origins, [_change("chg-1", "checkout", 0.7)])
    plain = _rank_with_changes([origins[0], _origin("tax-api", 0.9, named_by=["web"], onset=None)],
                               [_change("chg-1", "checkout", 0.7)])
    assert (silent[0]["service"], silent[0]["change_id"]) == ("checkout", "chg-1")
    assert silent[0]["features"]["names_silent"] == 1.0
    assert silent[0]["features"]["blames_failing"] == 0.0
    # Not weighed in the ranking, but the silent callee may be the cause: the change is less sure.
    assert silent[0]["score"] == plain[0]["score"]
    assert silent[0]["confidence"] < plain[0]["confidence"]


def test_blames_failing_coefficient_lowers_probability():
    base = {"origin_strength": 2.0, "origin_margin": 1.0, "named": 1.0}
    assert calibration.confidence({**base, "blames_failing": 1.0}) < calibration.confidence(base)


def _rank_sig(origins, changes, *, excess, naming):
    ctx = {"alerts": [], "missing_sources": []}
    sig = {"services": {"checkout": {"error_excess": excess}}, "series": [], "templates": [],
           "mentions": {"checkout": {"tax-api": naming}}}
    cor = {"origins": origins, "changes": changes, "neighbours": [], "capacity_services": []}
    return ranking.rank(ctx, sig, cor, [])


def test_a_deploy_yields_to_a_silent_callee_its_errors_are_about():
    origins = [_origin("checkout", 3.2, named_by=["web"], explains=["web"], victim_of=["tax-api"]),
               _origin("tax-api", 0.9, named_by=["checkout"], onset=None)]
    deploy = {**_change("chg-1", "checkout", 0.85), "kind": "deploy"}
    # 90 of the 100 excess error lines of checkout name tax-api: the errors are about the callee.
    ranked = _rank_sig(origins, [deploy], excess=100.0, naming=90.0)
    assert [(h["service"], h["change_id"]) for h in ranked[:2]] == [("tax-api", None), ("checkout", "chg-1")]
    # A few of them only: checkout's own deploy keeps the lead.
    ranked = _rank_sig(origins, [deploy], excess=100.0, naming=20.0)
    assert (ranked[0]["service"], ranked[0]["change_id"]) == ("checkout", "chg-1")
    # A config change on checkout can break its calls to tax-api by itself (a timeout, an endpoint): it keeps the lead.
    config = {**_change("chg-2", "checkout", 0.85), "kind": "config"}
    ranked = _rank_sig(origins, [config], excess=100.0, naming=90.0)
    assert (ranked[0]["service"], ranked[0]["change_id"]) == ("checkout", "chg-2")
