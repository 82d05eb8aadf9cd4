"""Fix plan, timeline, chart and the final report dict of the world-format spec."""

from __future__ import annotations

from typing import Any

from agents.evidence import calibration

_CHANGE_ACTIONS = {
    "deploy": ("rollback", "Roll {svc} back to {prev} (undo {cid})."),
    "feature_flag": ("disable_flag", "Turn flag {flag} off or back to {frm} (undo {cid})."),
    "config": ("revert_config", "Revert {key} on {svc} to {frm} (undo {cid})."),
    "db_migration": ("rollback_migration", "Roll back migration {migration} on {svc} (undo {cid})."),
    "infra": ("revert_infra", "Revert the infra change on {resource} (undo {cid})."),
}


def fix_plan(ctx: dict[str, Any], hyp: dict[str, Any], ver: dict[str, Any],
             changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Concrete next steps for the top hypothesis.

    Params: ctx — context; hyp — hypothesise output; ver — verify output;
    changes — the raw change records (to read versions and flag names).
    Returns: ``{steps: [{action, target, priority, description}]}``.
    """
    ranked = hyp.get("hypotheses") or []
    if not ranked:
        return {"steps": [{"action": "investigate", "target": "unknown", "priority": "P2",
                           "description": "No hypothesis stood: widen the window or add the missing sources."}]}
    top = ranked[0]
    svc = top["service"]
    steps = []
    change = next((c for c in changes or [] if c.get("id") == top.get("change_id")), None)
    if change is not None:
        details = change.get("details") or {}
        action, text = _CHANGE_ACTIONS.get(change.get("kind"), ("revert", "Revert {cid} on {svc}."))
        steps.append({"action": action, "target": svc, "priority": "P1", "description": text.format(
            svc=svc, cid=change.get("id"), prev=details.get("previous_version", "the previous version"),
            flag=details.get("flag", "the flag"), frm=details.get("from", "its previous value"),
            key=details.get("key", "the key"), migration=details.get("migration", "the migration"),
            resource=details.get("resource", "the resource"))})
    elif top["category"] == "capacity":
        steps.append({"action": "scale_out", "target": svc, "priority": "P1",
                      "description": f"Add capacity to {svc} (replicas, pool size) and shed or rate-limit the surge."})
    else:
        steps.append({"action": "failover", "target": svc, "priority": "P1",
                      "description": f"Restore {svc}: fail over or restart it and page its owners; "
                                     "callers should degrade gracefully meanwhile."})
    steps.append({"action": "verify_recovery", "target": svc, "priority": "P2",
                  "description": f"Watch metrics:{svc}/error_rate and latency_p95_ms return to baseline."})
    if ver.get("outcome") != "CONFIRMED":
        steps.append({"action": "confirm", "target": svc, "priority": "P2",
                      "description": "Confidence is not high: confirm with the service owner before acting."})
    return {"steps": steps}


def timeline(ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any], cor: dict[str, Any]) -> list[dict]:
    """Changes, onsets, alerts and the first new error templates, in time order."""
    items = []
    for change in chg.get("changes", []):
        items.append({"ts": change.get("ts"), "kind": "change", "ref": change.get("id"),
                      "summary": f"{change.get('kind')} on {change.get('service')}: {str(change.get('summary'))[:100]}"})
    for series in sig.get("series", [])[:12]:
        items.append({"ts": series["onset"], "kind": "anomaly", "ref": series["ref"],
                      "summary": f"{series['name']} of {series['service']} leaves its baseline"})
    for alert in ctx.get("alerts", [])[:20]:
        items.append({"ts": alert.get("ts"), "kind": "alert", "ref": str(alert.get("id")),
                      "summary": str(alert.get("title"))[:120]})
    for tpl in sig.get("templates", [])[:10]:
        if tpl["kind"] in ("new", "burst") and tpl.get("first_after"):
            items.append({"ts": tpl["first_after"], "kind": "log", "ref": tpl["ref"],
                          "summary": f"{tpl['kind']} template on {tpl['service']}: {tpl['template'][:80]}"})
    items = [i for i in items if isinstance(i["ts"], str)]
    items.sort(key=lambda i: i["ts"])
    return items


def chart(sig: dict[str, Any], cor: dict[str, Any], hyp: dict[str, Any], chg: dict[str, Any]) -> dict[str, Any]:
    """Series (error rate and p95 latency of the origin and top victims) and change markers for the PNG."""
    ranked = hyp.get("hypotheses") or []
    services = []
    if ranked:
        services.append(ranked[0]["service"])
    for origin in cor.get("origins", []):
        for victim in origin.get("explains", []):
            if victim not in services:
                services.append(victim)
        break
    services = services[:4]
    series = []
    for svc in services:
        for name in ("error_rate", "latency_p95_ms"):
            points = sig.get("chart", {}).get(f"{svc}/{name}")
            if points:
                series.append({"service": svc, "name": name, "points": points})
    markers = [{"ts": c.get("ts"), "label": f"{c.get('kind')} {c.get('service')}", "ref": c.get("id")}
               for c in chg.get("changes", []) if c.get("ts")]
    return {"series": series, "markers": markers[:20]}


def build(ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any], cor: dict[str, Any],
          hyp: dict[str, Any], ver: dict[str, Any], fix: dict[str, Any]) -> dict[str, Any]:
    """The report JSON of the world-format spec plus fix_plan, timeline, chart, missing_sources."""
    ranked = hyp.get("hypotheses") or []
    missing = sorted(set(ctx.get("missing_sources", []) + sig.get("missing_sources", [])))
    public = [{k: h[k] for k in ("rank", "statement", "service", "change_id", "category", "confidence",
                                  "evidence", "counter_evidence", "features")} for h in ranked]
    if ranked:
        top = ranked[0]
        conf = int(top["confidence"])
        verified = ver.get("outcome") in ("CONFIRMED", "LIKELY") and all(c["passed"] for c in ver.get("checks", []))
        if ver.get("outcome") == "DECLINED":
            conf = min(conf, 40)
        verdict = calibration.verdict(conf, verified=verified)
        root = {"summary": top["statement"], "service": top["service"], "change_id": top["change_id"],
                "category": top["category"]}
    else:
        conf, verdict = 5, "INCONCLUSIVE"
        root = {"summary": "No anomaly or error evidence was found in the window.", "service": None,
                "change_id": None, "category": "none"}
    return {"verdict": verdict, "confidence": conf, "root_cause": root, "hypotheses": public,
            "fix_plan": fix, "timeline": timeline(ctx, sig, chg, cor), "missing_sources": missing,
            "chart": chart(sig, cor, hyp, chg), "onset": sig.get("onset"),
            "verification": {"outcome": ver.get("outcome"), "checks": ver.get("checks", [])}}
