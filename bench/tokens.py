"""Tokens and cost of the agents per investigation, and "no bad model lowers top-1".

Part 1 runs the example worlds (examples/worlds/*, ../shared/worlds/*) through the evidence
engine and then the agent team, against the stand-in Messages API (tests/fakes/anthropic_server.py,
driven through the real `anthropic` client) answering as a typical model does
(tests/fakes/scripted_models.typical: two narrow tool calls in parallel, then a submission; the
verifier submits at once). It prints, per agent and per investigation, the input tokens split
into uncached / cache write / cache read, the output tokens, the cached share and the cost at
Sonnet-class prices, for each mode; each
investigation starts with a cold prompt cache (the conservative figure). The stand-in counts ~4 characters per token and simulates
the prompt cache over our cache breakpoints, so the figures measure the prompts we really send,
with an approximate tokenizer.

Targets (issue 14): ≤ 60k input tokens and ≤ $0.10 for a balanced investigation.

Part 2 generates the suite bench/rca.py scores (sandbox.generator.generate_suite, decoys on) and
runs every world with the engine alone and then with each scripted-bad model (wrong culprit at
confidence 99, nonsense, invented citations, refusal, gullible to injections); it prints top-1 on
(service, change_id) for each and fails (exit 1) if any bad model lowers it.

Usage: .venv/bin/python bench/tokens.py [--count 20] [--seed 202] [--skip-suite]
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents import engine  # noqa: E402
from agents.llm import AnthropicLLM  # noqa: E402
from agents.team import AgentTeam  # noqa: E402
from sandbox.tools import WorldTools  # noqa: E402
from tests.fakes import scripted_models as sm  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402

TARGET_TOKENS = 60_000
TARGET_USD = 0.10
MODELS = {"fast": "claude-haiku-4-5", "balanced": "claude-sonnet-4-6", "deep": "claude-sonnet-4-6"}


def phases(tools: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The engine's report and the context/changes outputs the agents' pack is built from."""
    return engine.run_phases(tools, None, None)


def team_for(fake: FakeAnthropic, deep_model: str = "claude-sonnet-4-6") -> AgentTeam:
    def models(tier: str) -> AnthropicLLM:
        name = deep_model if tier == "deep" else MODELS[tier]
        return AnthropicLLM(api_key=fake.api_key, base_url=fake.url, model=name, sleep=lambda s: None)
    return AgentTeam(models)


def part1(worlds: list[Path]) -> bool:
    ok = True
    if True:  # each investigation starts with a cold prompt cache (a fresh stand-in): the conservative figure
        print(f"{'world':<20} {'mode':<9} {'agent':<13} {'uncached':>8} {'c.write':>8} {'c.read':>8} {'in':>7} "
              f"{'out':>6} {'cached':>7} {'USD':>8} {'calls':>5}")
        for world in worlds:
            tools = WorldTools(world)
            report, ctx, chg = phases(tools)
            for mode in ("fast", "balanced", "deep"):
                fake = FakeAnthropic().start()
                fake.responder = sm.typical()
                try:
                    res = team_for(fake).run(mode=mode, report=report, ctx=ctx, chg=chg, tools=tools)
                finally:
                    fake.stop()
                tot = {"u": 0, "w": 0, "r": 0, "out": 0, "usd": 0.0, "calls": 0}
                for run in res.runs:
                    u = sum(t["input_tokens"] for t in run["turns"])
                    w = sum(t["cache_write_tokens"] for t in run["turns"])
                    r = sum(t["cache_read_tokens"] for t in run["turns"])
                    total = u + w + r
                    print(f"{world.name:<20} {mode:<9} {run['agent']:<13} {u:>8} {w:>8} {r:>8} {total:>7} "
                          f"{run['tokens_out']:>6} {r / max(total, 1):>6.0%} {run['cost_usd']:>8.4f} "
                          f"{len(run['tool_calls']):>5}")
                    for key, val in (("u", u), ("w", w), ("r", r), ("out", run["tokens_out"]),
                                     ("usd", run["cost_usd"]), ("calls", len(run["tool_calls"]))):
                        tot[key] += val
                total_in = tot["u"] + tot["w"] + tot["r"]
                meets = total_in <= TARGET_TOKENS and tot["usd"] <= TARGET_USD
                if mode == "balanced" and not meets:
                    ok = False
                flag = ("  meets ≤60k / ≤$0.10" if meets else "  OVER TARGET") if mode == "balanced" else ""
                print(f"{world.name:<20} {mode:<9} {'= total':<13} {tot['u']:>8} {tot['w']:>8} {tot['r']:>8} "
                      f"{total_in:>7} {tot['out']:>6} {tot['r'] / max(total_in, 1):>6.0%} {tot['usd']:>8.4f} "
                      f"{tot['calls']:>5}{flag}")
    return ok


BAD = {"wrong_culprit": sm.wrong_culprit, "nonsense": sm.nonsense, "invented_citations": sm.invented_citations,
       "refuser": sm.refuser, "gullible": lambda: sm.gullible("sk-ant-test-0123456789")}


def part2(count: int, seed: int) -> bool:
    from sandbox.generator import generate_suite

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        worlds = generate_suite(Path(tmp), count=count, seed=seed, decoys=True)
        print(f"\ngenerated {len(worlds)} worlds (seed {seed}) in {time.perf_counter() - started:.1f} s")
        hits = {name: 0 for name in ("engine", *BAD)}
        fake = FakeAnthropic().start()
        try:
            for world in worlds:
                truth = yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]
                want = (truth["service"], truth["change_id"])
                tools = WorldTools(world)
                report, ctx, chg = phases(tools)
                top = report["hypotheses"][0] if report["hypotheses"] else {}
                hits["engine"] += (top.get("service"), top.get("change_id")) == want
                for name, make in BAD.items():
                    fake.responder = make()
                    out = team_for(fake).run(mode="balanced", report=report, ctx=ctx, chg=chg, tools=tools).report
                    top = out["hypotheses"][0] if out["hypotheses"] else {}
                    rc = out["root_cause"]
                    hits[name] += (top.get("service"), top.get("change_id")) == want and \
                        (rc.get("service"), rc.get("change_id")) == (report["root_cause"].get("service"),
                                                                     report["root_cause"].get("change_id"))
        finally:
            fake.stop()
    n = max(len(worlds), 1)
    ok = True
    for name, hit in hits.items():
        lower = hit < hits["engine"]
        ok = ok and not lower
        print(f"  top-1 {name:<20} {hit / n:.3f} ({hit}/{n}){'  LOWER THAN THE ENGINE' if lower else ''}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=202)
    parser.add_argument("--skip-suite", action="store_true")
    args = parser.parse_args()
    shared = ROOT.parent / "shared" / "worlds"
    if not shared.is_dir():
        shared = Path("/work/shared/worlds")
    worlds = [Path(p) for p in sorted(glob.glob(str(ROOT / "examples" / "worlds" / "*")))
              + sorted(glob.glob(str(shared / "*"))) if (Path(p) / "world.yaml").is_file()]
    ok = part1(worlds)
    if not args.skip_suite:
        ok = part2(args.count, args.seed) and ok
    print("\nall targets met" if ok else "\nSOME TARGET MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
