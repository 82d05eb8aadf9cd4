"""Top-1 diagnosis with memory vs without, on the same suites (issue #17, item 3: priors).

For each world the evidence engine runs its phases once (context, signals, changes, correlation); then the
hypotheses ⇄ verification loop runs four times, with different memories given to ``agents.priors.apply``:

* ``none`` — no memory (the engine as it is);
* ``history`` — past incidents found by the production lookup (``KnowledgeBase.similar`` on real embedded
  Chroma with the real embedder, symptoms from ``store.knowledge.symptoms_of`` without a root cause) in a
  history whose root causes are the truths. Generated suite: the history holds each world once, as
  investigated with every source (so each new incident has one true recurrence, and the other worlds are
  distractors); Nezha TrainTicket: leave-one-out, the other 44 real incidents (natural recurrences: the same
  service and fault type on other days);
* ``disputed`` — the same history with every past root cause disputed (latest vote 👎): must equal ``none``;
* ``decoy`` — the past root cause is wrong this time: the true recurrences are replaced by one past incident
  of the same score (at least 0.95) blaming the engine's best *wrong* candidate.

Each suite also runs degraded (the metrics source down), where the engine is less sure and near-ties
appear. Printed per suite: top-1 for each memory, the worlds where it rose and where it dropped, and how
many final answers were a candidate the engine had put more than the margin below its top (must be 0:
"priors never turn a clearly wrong candidate into the answer").

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/knowledge_priors.py [--count 60] [--seed 202]
        [--nezha ../shared/eval/nezha-tt]
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import engine, priors  # noqa: E402
from store.knowledge import (  # noqa: E402
    SEEN_BEFORE,
    KnowledgeBase,
    incident_from_report,
    make_client,
    shared_embedder,
    symptoms_of,
)

MEMORIES = ("none", "history", "disputed", "decoy")


class Degraded:
    """A ToolSource whose ``drop`` capability families fail, as a source that is down does."""

    def __init__(self, inner: Any, drop: tuple[str, ...]) -> None:
        self.inner, self.drop = inner, drop

    def call(self, capability: str, **args: Any) -> Any:
        if capability.split(".")[0] in self.drop:
            raise RuntimeError(f"{capability}: source unavailable")
        return self.inner.call(capability, **args)


def phases(tools: Any) -> dict[str, Any]:
    ctx = engine.gather_context(tools, None, None)
    sig = engine.analyse_signals(tools, ctx)
    chg = engine.gather_changes(tools, ctx)
    return {"tools": tools, "ctx": ctx, "sig": sig, "chg": chg, "cor": engine.correlate(ctx, sig, chg)}


def diagnose(run: dict[str, Any], similar: list[dict[str, Any]] | None, weight: float) -> dict[str, Any] | None:
    """The hypotheses ⇄ verification loop as the pipeline runs it, priors applied in every round.

    Returns: the final top hypothesis, or None.
    """
    ctx, sig, chg, cor, tools = run["ctx"], run["sig"], run["chg"], run["cor"], run["tools"]
    rejected: list[dict[str, Any]] = []

    def hypothesise() -> dict[str, Any]:
        raw = engine.hypothesise(ctx, sig, chg, cor, rejected=list(rejected))
        return priors.apply(raw, similar, weight=weight, margin=weight) if similar is not None else raw

    first = hyp = hypothesise()
    ver = engine.verify(tools, ctx, sig, chg, cor, hyp)
    for _ in range(engine.MAX_ROUNDS - 1):
        if ver["outcome"] != "DECLINED" or not hyp["hypotheses"]:
            break
        rejected.append(ver["hypothesis"])
        hyp = hypothesise()
        if not hyp["hypotheses"]:
            break
        ver = engine.verify(tools, ctx, sig, chg, cor, hyp)
    if not hyp["hypotheses"]:
        hyp = first
    return hyp["hypotheses"][0] if hyp["hypotheses"] else None


def truth_of(world: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]


def past_incident(inc_id: str, world: Path, run: dict[str, Any]) -> Any:
    """The world as a past investigation: its symptoms, and its truth as the confirmed root cause."""
    truth = truth_of(world)
    kinds = {str(c.get("id")): str(c.get("kind")) for c in run["chg"].get("changes") or []}
    report = {"symptoms": symptoms_of(run["ctx"], run["sig"], {"root_cause": {"service": truth["service"]}}),
              "root_cause": {"service": truth["service"], "change_id": truth.get("change_id"),
                             "category": truth.get("category"), "summary": f"{truth.get('category')} on "
                             f"{truth['service']}"},
              "verdict": "CONFIRMED"}
    return incident_from_report(inc_id, None, report, change_kinds=kinds)


def key_of(h: dict[str, Any] | None, service_only: bool) -> Any:
    if h is None:
        return None
    return h["service"] if service_only else (h["service"], h.get("change_id"))


def score_suite(worlds: list[Path], kb: KnowledgeBase, *, service_only: bool, leave_one_out: bool,
                drop: tuple[str, ...], weights: list[float]) -> list[dict[str, Any]]:
    """Run one suite (one source variant) under every memory and prior weight; one row per world.

    Row: ``{world, shown, hit: {(memory, weight): bool}, clearly_wrong: {(memory, weight): bool}}``.
    """
    from sandbox.tools import WorldTools

    full_runs = {w.name: phases(WorldTools(w)) for w in worlds}
    kb.rebuild([past_incident(f"past-{w.name}", w, full_runs[w.name]) for w in worlds])
    rows = []
    for w in worlds:
        run = phases(Degraded(WorldTools(w), drop)) if drop else full_runs[w.name]
        truth = truth_of(w)
        want = truth["service"] if service_only else (truth["service"], truth.get("change_id"))
        query = incident_from_report(f"new-{w.name}", None, {"symptoms": symptoms_of(run["ctx"], run["sig"], {})})
        exclude = [f"past-{w.name}"] if leave_one_out else []
        found = [m.as_report() for m in kb.similar(query, k=5, exclude=exclude) if m.score >= SEEN_BEFORE]
        plain = engine.hypothesise(run["ctx"], run["sig"], run["chg"], run["cor"], rejected=[])["hypotheses"]
        top_score = plain[0]["score"] if plain else 0.0
        wrong = next((h for h in plain if key_of(h, service_only) != want), None)
        true_ids = {s["investigation_id"] for s in found if priors.same_cause(
            {"service": truth["service"], "change_id": truth.get("change_id"), "category": truth.get("category")},
            s["root_cause"])}
        memories: dict[str, list[dict[str, Any]] | None] = {
            "none": None, "history": found,
            "disputed": [{**s, "feedback": {**s["feedback"], "disputed": True}} for s in found],
            "decoy": [s for s in found if s["investigation_id"] not in true_ids] + ([{
                "investigation_id": "decoy", "score": max([0.95] + [s["score"] for s in found]),
                "summary": "decoy", "feedback": {"up": 1, "down": 0, "comments": [], "disputed": False},
                "root_cause": {"service": wrong["service"], "change_id": wrong.get("change_id"),
                               "category": wrong.get("category"),
                               "change_kind": wrong.get("category") if wrong.get("change_id") else None}}]
                if wrong else []),
        }
        row: dict[str, Any] = {"world": w.name, "shown": bool(found), "hit": {}, "clearly_wrong": {}}
        for m in MEMORIES:
            for weight in ([0.0] if m == "none" else weights):
                top = diagnose(run, memories[m], weight)
                got = key_of(top, service_only)
                row["hit"][(m, weight)] = got == want
                # an answer that carried a prior although the engine had put it more than the margin below its top
                engine_score = next((h["score"] for h in plain if key_of(h, service_only) == got
                                     and h.get("change_id") == (top or {}).get("change_id")), None)
                row["clearly_wrong"][(m, weight)] = bool(
                    top and top.get("prior") and engine_score is not None and top_score - engine_score > weight)
        rows.append(row)
    return rows


def summarise(label: str, rows: list[dict[str, Any]], weights: list[float]) -> None:
    """Print top-1 per memory and weight, the worlds where it rose and dropped against no memory."""
    n = len(rows)
    if not n:
        return
    base = {r["world"]: r["hit"][("none", 0.0)] for r in rows}
    print(f"\n== {label}: {n} worlds, {sum(r['shown'] for r in rows)} with a past incident shown; "
          f"no memory top-1 {sum(base.values()) / n:.3f}")
    for weight in weights:
        parts = []
        for m in MEMORIES[1:]:
            hits = [r["hit"][(m, weight)] for r in rows]
            rose = [r["world"] for r in rows if r["hit"][(m, weight)] and not base[r["world"]]]
            dropped = [r["world"] for r in rows if base[r["world"]] and not r["hit"][(m, weight)]]
            parts.append(f"{m} {sum(hits) / n:.3f} (+{len(rose)} -{len(dropped)})")
        wrong = sum(r["clearly_wrong"][(m, weight)] for r in rows for m in MEMORIES[1:])
        print(f"  weight {weight:.2f}: " + "   ".join(parts) + f"   clearly-wrong answers {wrong}")
    detail = weights[len(weights) // 2]
    for m in ("history", "decoy"):
        rose = [r["world"] for r in rows if r["hit"][(m, detail)] and not base[r["world"]]]
        dropped = [r["world"] for r in rows if base[r["world"]] and not r["hit"][(m, detail)]]
        if rose or dropped:
            print(f"  at {detail:.2f}, {m}: rose {rose}  dropped {dropped}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seeds", default="202,303", help="generated suites (the first for tuning)")
    ap.add_argument("--weights", default="0.05,0.1,0.15,0.2,0.3", help="prior weights (= margins) to compare")
    default_nezha = Path(__file__).resolve().parents[2] / "shared" / "eval" / "nezha-tt"
    ap.add_argument("--nezha", default=str(default_nezha) if default_nezha.exists() else None)
    args = ap.parse_args()
    from sandbox.generator import generate_suite

    weights = [float(x) for x in args.weights.split(",")]
    print(f"priors: production weight = margin = {priors.PRIOR_WEIGHT} (engine score units), "
          f"similarity >= {SEEN_BEFORE}; figures: top-1 (+rose -dropped against no memory)")
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(make_client(home=Path(tmp), chroma_host=None), shared_embedder())
        for seed in [int(x) for x in args.seeds.split(",")]:
            worlds = generate_suite(Path(tmp) / f"suite-{seed}", count=args.count, seed=seed, decoys=True)
            for drop in ((), ("metrics",)):
                rows = score_suite(worlds, kb, service_only=False, leave_one_out=False, drop=drop, weights=weights)
                summarise(f"generated seed {seed}{' (metrics down)' if drop else ''}", rows, weights)
        if args.nezha:
            nezha = [Path(p) for p in sorted(glob.glob(str(Path(args.nezha) / "tt-*")))]
            for drop in ((), ("metrics",)):
                rows = score_suite(nezha, kb, service_only=True, leave_one_out=True, drop=drop, weights=weights)
                down = " (metrics down)" if drop else ""
                for half, parity in (("odd", 1), ("even", 0)):
                    summarise(f"nezha-tt {half} half, service, leave-one-out{down}",
                              [r for r in rows if int(r["world"].split("-")[-1]) % 2 == parity], weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
