"""Change records (deploys, flags, configs, migrations, infra) for generated worlds.

The culprit and the harmless changes are drawn from the same summary pools, so
wording alone never gives the culprit away; only what the change does (and the
errors it brings) differs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox.gen_model import Change, Service
from sandbox.gen_vocab import (
    BAD_CONFIGS,
    COLUMNS,
    DEPLOY_ERRORS,
    DEPLOY_SUMMARIES,
    FLAG_ERRORS,
    FLAG_NAMES,
    FLAG_SUMMARIES,
    HARMLESS_CONFIGS,
    INFRA_ACTIONS,
    MIGRATION_ACTIONS,
    MIGRATION_ERRORS,
    MIGRATION_SUMMARIES,
    PEOPLE,
    RESOURCES,
)

# Harmful settings on a datastore: (key, from, to). The datastore logs nothing; its callers show it.
_BAD_STORE_CONFIGS = (
    ("max_connections", "500", "40"), ("maxmemory", "8gb", "512mb"), ("statement_timeout", "30s", "150ms"),
    ("tcp_keepalive", "300", "0"), ("replica_read_only", "yes", "no"),
)
_GENERIC_CONFIG_SUMMARIES = ("Update {svc} {key}", "Set {key}={to} on {svc}", "{svc}: change {key} from {from_} to {to}")


@dataclass
class Drafted:
    """A drafted change plus, when it is the culprit, the errors it makes its service log."""

    change: Change
    templates: tuple[str, ...] = ()
    fixed: dict[str, object] | None = None
    rollout_pct: int | None = None


class ChangeBook:
    """Draws change records with unique ids and consistent per-service version histories."""

    def __init__(self, rng: random.Random, day: str) -> None:
        """Params: rng: the world's random stream; day: ``YYYYMMDD`` of the window, for migration names."""
        self._rng = rng
        self._day = day
        self._ids: set[str] = set()
        self._versions: dict[str, tuple[int, int, int]] = {}
        self._rollbacks: set[str] = set()

    def _id(self) -> str:
        while True:
            cid = f"chg-{self._rng.randint(1000, 9999)}"
            if cid not in self._ids:
                self._ids.add(cid)
                return cid

    def _bump(self, prev: tuple[int, int, int]) -> tuple[int, int, int]:
        major, minor, patch = prev
        step = self._rng.random()
        return (major, minor, patch + self._rng.randint(1, 4)) if step < 0.6 else (major, minor + 1, 0) \
            if step < 0.95 else (major + 1, 0, 0)

    def _version(self, svc: str) -> tuple[str, str]:
        rng = self._rng
        prev = self._versions.get(svc) or (rng.randint(1, 9), rng.randint(0, 40), rng.randint(0, 99))
        new = self._bump(prev)
        self._versions[svc] = new
        return ".".join(map(str, new)), ".".join(map(str, prev))

    def renumber(self, changes: list[Change]) -> None:
        """Make deploy versions climb in time order per service (changes are drafted out of order).

        A rollback goes back to the version before the deploy it undoes. Summaries that quote a
        version are rewritten to match.

        Params:
            changes: all changes of the world, sorted by ``ts``.
        """
        rng = self._rng
        current: dict[str, tuple[int, int, int]] = {}
        before: dict[str, tuple[int, int, int]] = {}
        for c in changes:
            if c.kind != "deploy":
                continue
            cur = current.get(c.service) or (rng.randint(1, 9), rng.randint(0, 40), rng.randint(0, 99))
            new = before.get(c.service, self._bump(cur)) if c.id in self._rollbacks else self._bump(cur)
            old_text = str(c.details["version"])
            c.details["version"], c.details["previous_version"] = ".".join(map(str, new)), ".".join(map(str, cur))
            c.summary = c.summary.replace(old_text, str(c.details["version"]))
            before[c.service], current[c.service] = cur, new

    def draft(self, kind: str, svc: Service, ts: int, *, harmful: bool) -> Drafted:
        """Draft one change of ``kind`` on ``svc`` at ``ts`` seconds.

        Params:
            kind: deploy | feature_flag | config | db_migration | infra.
            svc: the service changed.
            ts: seconds from the window start.
            harmful: draft the culprit (details that break things, plus the errors they cause).

        Returns:
            The drafted change; ``templates`` is empty for harmless changes and datastores.
        """
        rng = self._rng
        author = rng.choice(PEOPLE)
        fields: dict[str, object] = {"svc": svc.name, "res": rng.choice(RESOURCES)}
        templates: tuple[str, ...] = ()
        fixed: dict[str, object] = {"svc": svc.name}
        pct: int | None = None
        if kind == "deploy":
            version, previous = self._version(svc.name)
            fields["version"] = version
            summary = rng.choice(DEPLOY_SUMMARIES).format(**fields)
            details: dict[str, object] = {"version": version, "previous_version": previous,
                                          "commit": f"{rng.getrandbits(48):012x}"}
            if harmful:
                templates = tuple(rng.sample(DEPLOY_ERRORS, rng.randint(1, 2)))
        elif kind == "feature_flag":
            style = rng.random()
            short = rng.choice(FLAG_NAMES)
            flag = f"specs.{svc.name}.{short}" if style < 0.5 else f"{svc.name}.{short}" if style < 0.8 \
                else f"{svc.name}-{short.lower()}"
            if harmful:
                pct = rng.choice((5, 10, 20, 25, 30, 40, 50, 75))
                pct_from = rng.choice((0, 0, 1, 5)) if pct > 5 else 0
            else:
                pct_from, pct = rng.choice(((50, 100), (0, 10), (25, 50), (10, 25)))
            summary = rng.choice(FLAG_SUMMARIES).format(flag=flag, to=f"{pct}%", from_=f"{pct_from}%")
            details = {"flag": flag, "from": f"{pct_from}%", "to": f"{pct}%", "rollout_pct": pct}
            if harmful:
                templates = tuple(rng.sample(FLAG_ERRORS, rng.randint(1, 2)))
                fixed["flag"] = flag
        elif kind == "config":
            if harmful and svc.store is not None:
                key, frm, to = rng.choice(_BAD_STORE_CONFIGS)
                summary = rng.choice(_GENERIC_CONFIG_SUMMARIES).format(svc=svc.name, key=key, to=to, from_=frm)
            elif harmful:
                key, frm, to, templates = rng.choice(BAD_CONFIGS)
                summary = rng.choice(_GENERIC_CONFIG_SUMMARIES).format(svc=svc.name, key=key, to=to, from_=frm)
            else:
                key, frm, to, own = rng.choice(HARMLESS_CONFIGS)
                pattern = own if rng.random() < 0.5 else rng.choice(_GENERIC_CONFIG_SUMMARIES)
                summary = pattern.format(svc=svc.name, key=key, to=to, from_=frm)
            details = {"key": key, "from": frm, "to": to}
        elif kind == "db_migration":
            table = rng.choice(RESOURCES) + "s"
            col = rng.choice(COLUMNS)
            action = rng.choice(MIGRATION_ACTIONS).format(table=table, col=col)
            migration = f"{self._day}_{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}_{action}"
            summary = rng.choice(MIGRATION_SUMMARIES).format(svc=svc.name, migration=migration, table=table)
            details = {"migration": migration, "table": table}
            if harmful:
                templates = tuple(rng.sample(MIGRATION_ERRORS, rng.randint(1, 2)))
                fixed.update(table=table, col=col)
        elif kind == "infra":
            action, pattern = rng.choice(INFRA_ACTIONS[:4] if harmful else INFRA_ACTIONS)
            n = rng.randint(2, 6)
            summary = pattern.format(svc=svc.name, n=n, m=max(1, n - 2) if action == "scale_down" else n + 2)
            details = {"resource": f"{svc.name}" if rng.random() < 0.6 else f"{svc.name}-cluster", "action": action}
        else:  # pragma: no cover - callers pass only the kinds above
            raise ValueError(f"unknown change kind {kind!r}")
        change = Change(self._id(), ts, kind, svc.name, author, summary, details)
        return Drafted(change, templates if svc.store is None else (), fixed, pct)

    def rollback(self, culprit: Change, ts: int) -> Change:
        """Draft the change that undoes ``culprit`` at ``ts`` (a late change on the culprit's service)."""
        rng = self._rng
        d = culprit.details
        if culprit.kind == "deploy":
            summary = rng.choice(("Rollback {svc} to {v}", "Revert {svc} to {v}", "{svc}: roll back to {v}"))
            details: dict[str, object] = {"version": d["previous_version"], "previous_version": d["version"],
                                          "commit": f"{rng.getrandbits(48):012x}"}
            summary = summary.format(svc=culprit.service, v=d["previous_version"])
        elif culprit.kind == "feature_flag":
            summary = f"Roll back {d['flag']} to {d['from']}"
            details = {"flag": d["flag"], "from": d["to"], "to": d["from"], "rollout_pct": int(str(d["from"])[:-1])}
        elif culprit.kind == "config":
            summary = f"Revert {culprit.service} {d['key']}"
            details = {"key": d["key"], "from": d["to"], "to": d["from"]}
        elif culprit.kind == "db_migration":
            summary = f"Roll back migration {d['migration']}"
            details = {"migration": f"{d['migration']}_down", "table": d["table"]}
        else:
            summary = f"Revert {d['action']} on {culprit.service}"
            details = {"resource": d["resource"], "action": "revert"}
        change = Change(self._id(), ts, culprit.kind, culprit.service, rng.choice(PEOPLE), summary, details)
        self._rollbacks.add(change.id)
        return change
