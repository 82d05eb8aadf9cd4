"""Fix plan, timeline, chart and the final report dict of the world-format spec."""

from __future__ import annotations

from typing import Any

from agents.evidence import calibration

#: Saturation metrics and the resource each names.
_RESOURCES = {"cpu_util": "CPU", "mem_util": "memory", "db_connections": "database connection pool"}


def _remedy(change: dict[str, Any], svc: str) -> dict[str, Any]:
    """The step that undoes a culprit change: the exact target and the value to return to, when known."""
    details = change.get("details") or {}
    cid = change.get("id")
    kind = change.get("kind")
    if kind == "deploy":
        prev, now = details.get("previous_version"), details.get("version")
        frm = f" from {now}" if now else ""
        to = prev or "the previous version"
        return {"action": "rollback", "target": svc, "previous_value": prev,
                "description": f"Roll {svc} back{frm} to {to} (undo {cid}).",
                "risk": "Low: the previous version ran before the onset; migrations and data written since "
                        "must still be readable by it."}
    if kind == "feature_flag":
        flag = details.get("flag") or "the flag"
        frm = details.get("from")
        pct = details.get("rollout_pct")
        share = f" (now at {pct}% rollout)" if pct is not None else ""
        back = f" or back to its previous value {frm!r}" if frm not in (None, "") else ""
        return {"action": "disable_flag", "target": flag, "previous_value": frm,
                "description": f"Turn flag {flag} off{back}{share} for {svc} (undo {cid}).",
                "risk": "Low: the users in the rollout lose the new behaviour."}
    if kind == "config":
        key = details.get("key") or "the changed key"
        frm, to = details.get("from"), details.get("to")
        now = f" from {to!r}" if to not in (None, "") else ""
        back = f" to {frm!r}" if frm not in (None, "") else " to its previous value"
        return {"action": "revert_config", "target": f"{svc}:{key}", "previous_value": frm,
                "description": f"Revert {key} on {svc}{now}{back} (undo {cid}).",
                "risk": "Low, if nothing since depends on the new value."}
    if kind == "db_migration":
        migration = details.get("migration") or "the migration"
        table = details.get("table")
        on = f" on table {table}" if table else ""
        return {"action": "rollback_migration", "target": migration, "previous_value": None,
                "description": f"Roll back migration {migration}{on} of {svc}, or fix forward if rows were "
                               f"already written in the new shape (undo {cid}).",
                "risk": "Medium: a down-migration can lose data written since; take a backup first."}
    resource = details.get("resource") or "the resource"
    action = details.get("action")
    what = f" ({action})" if action else ""
    return {"action": "revert_infra", "target": resource, "previous_value": None,
            "description": f"Revert the infrastructure change on {resource}{what} (undo {cid}).",
            "risk": "Medium: check what else uses the resource before reverting."}


def _saturated(top: dict[str, Any]) -> str | None:
    """The resource the top hypothesis's evidence shows saturated (from its metric refs), if any."""
    for item in top.get("evidence") or []:
        ref = str(item.get("ref") or "")
        for metric, name in _RESOURCES.items():
            if ref.endswith("/" + metric):
                return name
    return None


def _baseline(sig: dict[str, Any] | None, svc: str, metric: str) -> float | None:
    for series in (sig or {}).get("series") or []:
        if series.get("service") == svc and series.get("name") == metric and series.get("baseline") is not None:
            return float(series["baseline"])
    return None


def fix_plan(ctx: dict[str, Any], hyp: dict[str, Any], ver: dict[str, Any],
             changes: list[dict[str, Any]] | None = None, sig: dict[str, Any] | None = None) -> dict[str, Any]:
    """Concrete next steps for the top hypothesis: the remedy that names the fix, then how to verify.

    Params: ctx — context; hyp — hypothesise output; ver — verify output; changes — the raw change
    records (versions, flags, keys); sig — analyse_signals output (metric baselines to verify against).
    Returns: ``{steps: [{action, target, priority, description, previous_value?, verify?, risk?,
    requires_approval}]}``. Nothing is executed: every step waits for a human's approval.
    """
    ranked = hyp.get("hypotheses") or []
    if not ranked:
        return {"steps": [{"action": "investigate", "target": "unknown", "priority": "P2", "requires_approval": True,
                           "description": "No hypothesis stood: widen the window or add the missing sources."}]}
    top = ranked[0]
    svc = top["service"]
    change = next((c for c in changes or [] if c.get("id") == top.get("change_id")), None)
    if change is not None:
        step = _remedy(change, svc)
    elif top["category"] == "capacity":
        resource = _saturated(top)
        named = f"its {resource}" if resource else "capacity (replicas, pool size)"
        step = {"action": "scale_out", "target": svc, "previous_value": None,
                "description": f"Add capacity to {svc}: raise {named}, and shed or rate-limit the surge meanwhile.",
                "risk": "Low: costs more while scaled; scale back once the surge passes."}
    elif top["category"] == "dependency":
        step = {"action": "failover", "target": svc, "previous_value": None,
                "description": f"{svc} is failing on its own: fail over to a healthy replica/region or a fallback, "
                               "and make its callers degrade gracefully (timeouts, circuit breakers) meanwhile; "
                               "page its owners.",
                "risk": "Medium: a failover moves load; check the target has room."}
    else:
        step = {"action": "failover", "target": svc, "previous_value": None,
                "description": f"Restore {svc}: fail over or restart it and page its owners; "
                               "callers should degrade gracefully meanwhile.",
                "risk": "Medium: a restart drops in-flight work."}
    err, p95 = _baseline(sig, svc, "error_rate"), _baseline(sig, svc, "latency_p95_ms")
    target = []
    if err is not None:
        target.append(f"error_rate back near {err:.3g}")
    if p95 is not None:
        target.append(f"latency_p95_ms back near {p95:.0f} ms")
    verify = (f"metrics:{svc}: " + " and ".join(target) if target
              else f"metrics:{svc}/error_rate and latency_p95_ms back to their baseline")
    step.update({"priority": "P1", "verify": verify, "requires_approval": True})
    steps = [step, {"action": "verify_recovery", "target": svc, "priority": "P2", "requires_approval": False,
                    "description": f"Watch {verify}, for at least 10 minutes after the fix."}]
    if ver.get("outcome") != "CONFIRMED":
        steps.append({"action": "confirm", "target": svc, "priority": "P2", "requires_approval": False,
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
    culprit = ranked[0].get("change_id") if ranked else None
    markers = [{"ts": c.get("ts"), "label": f"{c.get('kind')} {c.get('service')}", "ref": c.get("id"),
                "kind": c.get("kind"), **({"culprit": True} if c.get("id") == culprit else {})}
               for c in chg.get("changes", []) if c.get("ts")]
    # The culprit is always drawn, however many changes the window holds.
    markers = sorted(markers, key=lambda m: not m.get("culprit"))[:20]
    if sig.get("onset"):
        markers.append({"ts": sig["onset"], "label": "onset", "kind": "onset"})
    return {"series": series, "markers": markers}


def _consistent_order(public: list[dict[str, Any]], top_confidence: int) -> None:
    """Shown confidences never rise down the ranking (issue #12: "2. … (85%) · 3. … (96%)" read as nonsense).

    Each hypothesis's calibrated confidence is how sure its own evidence makes it; the rank also weighs
    how much of the incident it explains. Where a lower-ranked one reads higher on its own, it is shown
    at the confidence of the one above it, keeps its own as ``confidence_alone``, and says why
    (``rank_note``). The top one shows the report's confidence.
    """
    for i, h in enumerate(public):
        own = int(h["confidence"])
        ceiling = top_confidence if i == 0 else int(public[i - 1]["confidence"])
        if own > ceiling:
            h["confidence_alone"] = own
            h["confidence"] = ceiling
            if i > 0:
                h["rank_note"] = (f"on its own evidence {own}%, but it explains less of the incident than "
                                  "the hypotheses ranked above it")


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
    _consistent_order(public, conf)
    return {"verdict": verdict, "confidence": conf, "root_cause": root, "hypotheses": public,
            "fix_plan": fix, "timeline": timeline(ctx, sig, chg, cor), "missing_sources": missing,
            "chart": chart(sig, cor, hyp, chg), "onset": sig.get("onset"),
            "verification": {"outcome": ver.get("outcome"), "checks": ver.get("checks", [])}}
