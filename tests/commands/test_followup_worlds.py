"""Follow-ups answer the question asked (issue #12, item 3): a table of phrasings over every example world.

Each world is investigated once by the real pipeline (the evidence engine over ``sandbox.tools.WorldTools``,
embedded SQLite); each row asks ``commands.followup.ask`` (the deterministic path, as in Slack without
ANTHROPIC_API_KEY) and checks what the answer must and must not say. On the old answerer "why not
web-frontend?" (a victim) answered "It *is* my top hypothesis", "before the onset" listed changes made
after it, and a question it could not answer got the root cause instead of saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands import followup
from pipeline import phases as P
from pipeline.runtime import build_runtime
from sandbox.tools import WorldTools
from store import investigations
from store.config import Settings
from store.db import upgrade
from tests.paths import SHARED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "worlds"
WORLDS = {p.name: p for p in sorted(EXAMPLES.iterdir()) if p.is_dir()} | {
    name: SHARED / "worlds" / name for name in ("example-1", "example-2")}

NOT_TOP = "It *is*"
CANNOT = "can't answer"

# (world, question, every string the answer must hold, strings it must not hold)
ROWS: list[tuple[str, str, list[str], list[str]]] = [
    # demo-deploy: chg-8606 on playlists; web-frontend is its victim; chg-2985 lands after the onset
    ("demo-deploy", "why not web-frontend?", ["victim", "playlists", "#5"], [NOT_TOP]),
    ("demo-deploy", "Why wasn't it web-frontend?", ["victim"], [NOT_TOP]),
    ("demo-deploy", "why not playlists?", [NOT_TOP], ["victim"]),
    ("demo-deploy", "why not chg-2985?", ["after* the onset", "cannot have caused it"], [NOT_TOP]),
    ("demo-deploy", "why not the thumbnails config change?", ["chg-4614", "#4", "Against it"], [NOT_TOP]),
    ("demo-deploy", "what changed in playlists before the onset?", ["chg-7850", "chg-8606", "the root cause"],
     ["chg-2985"]),
    ("demo-deploy", "what changed in playlists after the onset?", ["chg-2985"], ["chg-8606", "chg-7850"]),
    ("demo-deploy", "what changed since the deploy?", ["since `chg-8606`", "chg-5027", "chg-2985"],
     ["chg-7850", "chg-4614"]),
    ("demo-deploy", "who deployed it?", ["chg-8606", "gus"], []),
    ("demo-deploy", "when did it start?", ["2026-07-29T20:07:00Z"], []),
    ("demo-deploy", "why not payments?", [CANNOT, "payments"], [NOT_TOP]),
    ("demo-deploy", "what is the meaning of life?", [CANNOT], ["CONFIRMED"]),
    ("demo-deploy", "what's the fix?", ["rollback", "3.14.0"], []),
    # demo-flag-rollout: flag chg-1844 on notifications
    ("demo-flag-rollout", "why not geo?", ["victim", "notifications", "9 min after the onset"], [NOT_TOP]),
    ("demo-flag-rollout", "what flags changed before the onset?", ["chg-1844"], ["chg-7882", "chg-6208"]),
    ("demo-flag-rollout", "what changed in notifications since the deploy?", ["chg-7882"], ["chg-1844` 20"]),
    ("demo-flag-rollout", "which deploys happened after the onset?", ["chg-2647", "chg-9457"],
     ["chg-6208", "chg-7882"]),
    ("demo-flag-rollout", "why not the geo deploy?", ["chg-2647", "after* the onset"], [NOT_TOP]),
    ("demo-flag-rollout", "could it be chg-1844?", [NOT_TOP, "root cause"], []),
    ("demo-flag-rollout", "show the errors in notifications", ["Errors on notifications", "NullPointerException"],
     []),
    # demo-config: config chg-8564 on settlement
    ("demo-config", "why not risk-scoring?", ["victim", "settlement", "#4"], [NOT_TOP]),
    ("demo-config", "why not chg-2558?", ["#3", "47 min before the onset"], [NOT_TOP]),
    ("demo-config", "what changed in settlement before it started?", ["chg-2558", "chg-8564"], []),
    ("demo-config", "what changed after the incident?", ["No change"], ["chg-8564"]),
    ("demo-config", "why not the accounts deploy?", ["chg-6189", "no anomaly of its own"], [NOT_TOP]),
    ("demo-config", "what config changes were made before the onset?", ["chg-3746", "chg-8564", "chg-5865"],
     ["chg-6189", "chg-9113"]),
    ("demo-config", "what's the root cause?", ["CONFIRMED", "chg-8564"], []),
    # demo-dependency: elasticsearch failed on its own
    ("demo-dependency", "why not fraud?", ["victim", "elasticsearch"], [NOT_TOP]),
    ("demo-dependency", "why not the fraud flag?", ["chg-7295", "rollout 10% does not match"], [NOT_TOP]),
    ("demo-dependency", "why not elasticsearch?", [NOT_TOP], []),
    ("demo-dependency", "what changed in elasticsearch?", ["chg-6617", "after the onset"], []),
    ("demo-dependency", "what changed before the onset?", ["chg-8382", "chg-7295"], ["chg-6617", "chg-6585"]),
    ("demo-dependency", "who changed fraud?", ["chg-8382", "chg-7295", "chg-6585"], []),
    # demo-capacity: recommendations saturated, no change
    ("demo-capacity", "why not postgres-orders?", ["#2", "chg-1107", "Against it"], [NOT_TOP]),
    ("demo-capacity", "which deploys happened before the onset?", ["chg-3979"], ["chg-1107", "chg-6152"]),
    ("demo-capacity", "what migrations ran?", ["chg-6152"], ["chg-3979"]),
    ("demo-capacity", "why not chg-0000?", [CANNOT, "chg-0000"], []),
    ("demo-capacity", "why not storefront?", ["victim", "recommendations"], [NOT_TOP]),
    ("demo-capacity", "what should we do?", ["Fix plan"], []),
    # example-1: mysql-legacy failed on its own; gateway and geo are victims
    ("example-1", "why not gateway?", ["victim", "mysql-legacy"], [NOT_TOP]),
    ("example-1", "why did you rule out the geo deploy?", ["chg-4000", "#5"], [NOT_TOP]),
    ("example-1", "what changed in gateway?", ["chg-5852"], ["chg-4000"]),
    ("example-1", "what changed after the onset?", ["chg-8910", "chg-6704", "chg-5516"], ["chg-5852", "chg-4000"]),
    ("example-1", "show the errors in geo", ["Errors on geo"], []),
    ("example-1", "status?", ["COMPLETE"], []),
    # example-2: deploy chg-3835 on pricing
    ("example-2", "why not the shipping deploy?", ["chg-4817", "no anomaly of its own", "chg-4479",
                                                   "after* the onset"], [NOT_TOP]),
    ("example-2", "what about catalog?", ["victim", "pricing"], [NOT_TOP]),
    ("example-2", "what changed in pricing before the onset?", ["chg-3835"], ["chg-5284"]),
    ("example-2", "what changed in pricing since the deploy?", ["chg-5284"], ["chg-3835` 20"]),
    ("example-2", "what changed before the pricing deploy?", ["chg-8966", "chg-2200"], ["chg-3835` 20", "chg-5284"]),
    ("example-2", "hello there", [CANNOT], []),
    ("example-2", "what changed since 16:00?", ["since 16:00 UTC", "chg-8966", "chg-7054"], ["chg-6048"]),
    ("example-2", "what changed in shipping before 16:00 UTC?", ["chg-4817", "chg-6048"], ["chg-4479"]),
    # relative spans, counted back from the end of the investigated window (example-2: 15:00–17:00 UTC)
    ("example-2", "what changed in the last hour?", ["in the last hour (16:00–17:00 UTC", "chg-8966", "chg-3835",
                                                      "chg-7054"], ["chg-6048", "chg-2200"]),
    ("example-2", "what changed in the last 15 minutes?", ["16:45–17:00 UTC", "chg-7054"],
     ["chg-5284", "not a service I saw"]),
    ("example-2", "any deploys in the past 45 minutes?", ["chg-4479", "chg-5284"], ["chg-7054", "chg-3835"]),
    ("example-2", "what changed in pricing over the last half hour?", ["chg-5284"], ["chg-3835", "chg-4479"]),
    ("example-2", "what changed in the last 2h?", ["15:00–17:00 UTC", "chg-2200", "chg-8966"], []),
    ("example-2", "what changed 20 minutes ago?", ["since 20 min ago (16:40 UTC", "chg-7054"], ["chg-5284"]),
    ("example-2", "what changed since 10:40?", ["since 10:40 UTC", "chg-2200"], []),
    ("example-2", "what changed since 4pm?", ["since 16:00 UTC", "chg-8966", "chg-7054"], ["chg-6048"]),
    ("example-2", "what changed since 16:10?", ["chg-3835", "chg-5284"], ["chg-8966"]),
    ("example-2", "what changed since the deploy?", ["since `chg-3835`", "chg-4479", "chg-7054"], ["chg-8966"]),
    ("example-2", "show the errors in the last 30 minutes", ["Errors", "not by time", "16:30–17:00 UTC"], []),
]


@pytest.fixture(scope="module")
def investigated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Any, str]]]:
    done: dict[str, tuple[Any, str]] = {}
    try:
        for name, world in WORLDS.items():
            home = tmp_path_factory.mktemp(name)
            url = f"sqlite:///{home / 'pm.sqlite3'}"
            upgrade(url)
            rt = build_runtime(Settings(DATABASE_URL=url, PM_HOME=str(home)),
                               tools_factory=lambda inv, w=world: WorldTools(w))
            trigger = WorldTools(world).call("world.describe")["trigger"]
            with rt.session() as s:
                inv_id = investigations.create(session=s, trigger=trigger, origin={"kind": "cli"}).id
                s.commit()
            assert rt.machine.advance(inv_id) == P.COMPLETE
            done[name] = (rt, inv_id)
        yield done
    finally:
        for rt, _ in done.values():
            rt.close()


def test_the_table_covers_every_world_with_at_least_40_phrasings() -> None:
    assert len(ROWS) >= 40
    assert {w for w, *_ in ROWS} == set(WORLDS)


@pytest.mark.parametrize(("world", "question", "must", "must_not"), ROWS,
                         ids=[f"{w}:{q}" for w, q, *_ in ROWS])
def test_a_follow_up_answers_the_question_asked(investigated: dict[str, tuple[Any, str]], world: str, question: str,
                                                must: list[str], must_not: list[str]) -> None:
    rt, inv_id = investigated[world]
    text = followup.ask(runtime=rt, investigation_id=inv_id, question=question, user="U1")
    for needle in must:
        assert needle in text, f"{question!r} on {world}: {needle!r} missing from\n{text}"
    for needle in must_not:
        assert needle not in text, f"{question!r} on {world}: {needle!r} should not be in\n{text}"
