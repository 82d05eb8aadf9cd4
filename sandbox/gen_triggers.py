"""Alerts, tickets, chat and the trigger of a generated world.

The alerted service is often a victim, not the origin; for the dependency
families it always is (the alerting service is healthy itself).
"""

from __future__ import annotations

import random

from sandbox.gen_model import Plan, iso
from sandbox.gen_vocab import (
    ALERT_TITLES,
    CHAT_ONCALL,
    PEOPLE,
    TEXT_TRIGGERS,
    TICKET_DESCRIPTIONS,
    TICKET_PROJECTS,
    TICKET_SUMMARIES,
)

_SOURCES = ("pagerduty", "grafana", "alertmanager")


def choose_alerted(rng: random.Random, plan: Plan) -> str:
    """Pick the service the trigger is about: a victim for dependency families, often one otherwise."""
    victims = [n for n, e in plan.effects.items() if e.depth and plan_is_app(plan, n)]
    if victims and (plan.family.startswith("dependency") or rng.random() < 0.5):
        return rng.choice(victims)
    if plan_is_app(plan, plan.origin) or not victims:
        return plan.origin
    return rng.choice(victims)


def plan_is_app(plan: Plan, name: str) -> bool:
    """Return whether ``name`` is an application (not a datastore) in ``plan``."""
    return any(s.name == name and s.store is None for s in plan.services)


def _minute_up(ts: int) -> int:
    return (ts + 59) // 60 * 60


def add_alerts(rng: random.Random, plan: Plan) -> dict[str, dict[str, object]]:
    """Create alert records; returns them by service. Honors the ``early_victim_alert`` decoy."""
    ids: set[str] = set()
    prefix = rng.choice(("pd", "pd", "pd", "alert", "am"))

    def new_id() -> str:
        while (aid := f"{prefix}-{rng.randint(1000, 9999)}") in ids:
            pass
        ids.add(aid)
        return aid

    wanted = {plan.alerted}
    if plan.origin != plan.alerted and rng.random() < 0.6:
        wanted.add(plan.origin)
    wanted.update(n for n, e in plan.effects.items() if e.depth and rng.random() < 0.35)
    early = "early_victim_alert" in plan.decoys
    if early and not any(plan.effects[n].depth for n in wanted):
        wanted.add(rng.choice([n for n, e in plan.effects.items() if e.depth]))
    times: dict[str, int] = {}
    for name in sorted(wanted):  # sorted: set order changes with PYTHONHASHSEED, the draws must not
        eff = plan.effects[name]
        times[name] = _minute_up(eff.start + eff.ramp // 2 + rng.randint(180, 480))
    if plan.origin in times:
        victims = [n for n in times if n != plan.origin]
        if early and victims:
            first = min(victims, key=lambda n: times[n])
            times[first] = _minute_up(plan.effects[first].start + 60)
            times[plan.origin] = max(times[plan.origin], times[first] + rng.randint(2, 6) * 60)
        elif not early:
            for n in victims:
                times[n] = max(times[n], times[plan.origin] + 60)
    alerts: dict[str, dict[str, object]] = {}
    for name in sorted(wanted, key=lambda n: (times[n], n)):
        source = rng.choice(_SOURCES)
        severity = rng.choice(("P1", "P2", "P2", "P3")) if source == "pagerduty" or rng.random() < 0.3 \
            else rng.choice(("critical", "warning"))
        group = f"saturation_{plan.mode}" if plan.family == "capacity" and name == plan.origin else \
            rng.choice(("errors", "errors", "latency"))
        labels: dict[str, object] = {"service": name}
        if rng.random() < 0.6:
            labels["env"] = "production"
        if source == "alertmanager":
            labels["alertname"] = {"errors": "HighErrorRate", "latency": "HighLatency"}.get(group, "Saturation")
        alerts[name] = {"id": new_id(), "ts": min(times[name], plan.duration_s - 60), "source": source,
                        "service": name, "severity": severity,
                        "title": rng.choice(ALERT_TITLES[group]).format(svc=name), "labels": labels}
    if "noisy_errors" in plan.decoys and rng.random() < 0.5:
        bystander = rng.choice([s.name for s in plan.services if s.name not in plan.effects] or [plan.alerted])
        plan.alerts.append({"id": new_id(), "ts": _minute_up(rng.randint(0, plan.duration_s - 120)),
                            "source": rng.choice(_SOURCES), "service": bystander, "severity": "warning",
                            "title": rng.choice(ALERT_TITLES["noise"]).format(svc=bystander),
                            "labels": {"service": bystander}})
    plan.alerts.extend(alerts.values())
    plan.alerts.sort(key=lambda a: (a["ts"], a["id"]))
    return alerts


def _hhmm(plan: Plan, ts: int) -> str:
    return iso(plan.start, ts)[11:16]


def add_trigger(rng: random.Random, plan: Plan, alerts: dict[str, dict[str, object]]) -> None:
    """Choose the trigger (alert / ticket / text) and write the ticket and chat records around it."""
    svc = plan.alerted
    alert = alerts.get(svc)
    seen = plan.effects[svc].start + rng.randint(-60, 180)
    hhmm = _hhmm(plan, seen - seen % 60)
    kind = rng.choices(("alert", "ticket", "text"), weights=(0.4, 0.4, 0.2))[0]
    if kind == "alert" and alert is None:
        kind = "ticket"
    project = rng.choice(TICKET_PROJECTS)
    # Unrelated older tickets, so ticket search has something to sift.
    for _ in range(rng.randint(0, 2)):
        other = rng.choice(plan.services).name
        plan.tickets.append({
            "key": f"{project}-{rng.randint(10000, 99999)}", "ts": rng.randint(0, max(1, plan.onset - 600)),
            "summary": rng.choice(("Add pagination to {s} exports", "Flaky test in {s} CI",
                                   "{s}: upgrade base image", "Document {s} runbook")).format(s=other),
            "description": "Backlog item.", "labels": ["tech-debt"], "reporter": rng.choice(PEOPLE),
            "components": [other], "status": rng.choice(("Open", "In Progress", "Done")),
        })
    base_ts = int(alert["ts"]) if alert else seen + 300  # type: ignore[call-overload]
    if kind == "alert" and alert is not None:
        plan.trigger = {"alert": str(alert["id"])}
    elif kind == "ticket":
        ref = f" Alert {alert['id']} fired." if alert and rng.random() < 0.7 else ""
        key = f"{project}-{rng.randint(10000, 99999)}"
        plan.tickets.append({
            "key": key, "ts": min(plan.duration_s - 60, base_ts + rng.randint(2, 15) * 60),
            "summary": rng.choice(TICKET_SUMMARIES).format(svc=svc),
            "description": rng.choice(TICKET_DESCRIPTIONS).format(svc=svc, hhmm=hhmm, alert_ref=ref),
            "labels": ["production-bug", "auto-investigate"], "reporter": rng.choice(("support-bot", "oncall", "qa-team")),
            "components": [svc], "status": "Open",
        })
        plan.trigger = {"ticket": key}
    else:
        plan.trigger = {"text": rng.choice(TEXT_TRIGGERS).format(svc=svc, hhmm=hhmm)}
    plan.tickets.sort(key=lambda t: (t["ts"], t["key"]))
    channel = rng.choice((f"#{svc}-alerts", "#incidents", "#oncall"))
    if alert is not None:
        plan.chat.append({"ts": base_ts + 30, "channel": channel, "user": "pagerduty",
                          "text": f"[FIRING] {alert['title']} ({alert['id']})"})
    plan.chat.append({"ts": base_ts + rng.randint(60, 240), "channel": channel, "user": "oncall",
                      "text": rng.choice(CHAT_ONCALL).format(svc=svc)})
    near = [c for c in plan.changes if c.id != plan.culprit and plan.onset - 900 < c.ts < plan.onset]
    if near and rng.random() < 0.6:
        c = rng.choice(near)
        plan.chat.append({"ts": c.ts + rng.randint(30, 120), "channel": "#deploys", "user": c.author,
                          "text": f"fyi: {c.summary} is out"})
    for msg in plan.chat:
        msg["ts"] = min(int(msg["ts"]), plan.duration_s - 1)  # type: ignore[call-overload]
    plan.chat.sort(key=lambda m: (m["ts"], m["channel"]))
