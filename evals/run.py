"""The agents' eval harness: cases as folders, scored strictly, with tokens, cost and latency.

A case is a folder under ``evals/cases/`` with ``case.yaml``::

    world: examples/worlds/demo-config   # a world (repo-relative, or ../shared/... / absolute) ...
    tools: tools.json.gz                  # ... or replayed tool outputs (capability + args -> result)
    trigger: {ticket: PAY-1}              # optional; default the world's own trigger
    mode: balanced                        # fast | balanced | deep
    tag: easy                             # easy | medium | hard
    expect: {service: settlement, change_id: chg-8564}
    facts: ["chg-8564", "settlement"]     # every one must appear in the rendered report

and ``turns.jsonl``: the recorded model turns (one JSON object per model call: ``agent``,
``step``, ``forced`` and the ``response`` — content blocks, stop_reason, usage).

With ANTHROPIC_API_KEY set (and no ``--replay``) the cases run against the real Messages API
(``--record`` writes the turns it got back into the case); otherwise they run against the
recorded turns, served by the loopback stand-in of the Messages API through the real client.
A replay that diverges (a request with no recorded turn) fails the case and says so.

Scoring is strict: a case passes when the report's root cause is the expected (service,
change_id) AND every expected fact appears in the rendered report. Per case it prints
pass/fail, tokens in/out, cost and latency; at the end the pass rate per tag.

Usage: .venv/bin/python evals/run.py [--replay] [--record] [--case NAME] [--model-balanced ID]
       .venv/bin/python evals/run.py --record-scripted   (turns from the scripted stand-in model)
       .venv/bin/python evals/run.py --record-tools CASE   (write tools.json from the case's world)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents import engine  # noqa: E402
from agents.errors import ToolError  # noqa: E402
from agents.llm import AnthropicLLM  # noqa: E402
from agents.team import AgentTeam  # noqa: E402
from agents.tiers import DEFAULT_MODELS  # noqa: E402
from publishers.markdown import render_report  # noqa: E402

CASES = Path(__file__).resolve().parent / "cases"


def resolve(path: str) -> Path:
    """A world path: absolute, repo-relative, or under the shared folder beside the repo."""
    p = Path(path)
    for candidate in (p, ROOT / p, ROOT.parent / p, Path("/work") / p):
        if candidate.exists():
            return candidate
    raise SystemExit(f"world {path} not found; give a path relative to the repository")


def key_of(capability: str, args: dict[str, Any]) -> str:
    return f"{capability} {json.dumps(args, sort_keys=True, default=str)}"


class ReplayTools:
    """A ToolSource answering from recorded tool outputs; an unrecorded call is a tool error."""

    def __init__(self, recorded: dict[str, Any]) -> None:
        self.recorded = recorded

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        k = key_of(capability, args)
        if k not in self.recorded:
            raise ToolError(f"not recorded: {k[:200]}", capability=capability)
        return json.loads(json.dumps(self.recorded[k]))


class RecordingTools:
    """Wraps a ToolSource and keeps every answer (for ``--record-tools``)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.recorded = inner, {}

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        out = self.inner.call(capability, **args)
        self.recorded[key_of(capability, args)] = out
        return out


def world_tools(world: Path) -> Any:
    from sandbox.tools import WorldTools

    return WorldTools(world)


def run_engine(tools: Any, trigger: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The engine's report and the context/changes outputs the agents' pack is built from."""
    return engine.run_phases(tools, trigger, None)


def case_tools(folder: Path, case: dict[str, Any]) -> Any:
    if case.get("tools"):
        path = folder / case["tools"]
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return ReplayTools(json.loads(raw))
    return world_tools(resolve(case["world"]))


def _agent_step(body: dict[str, Any]) -> tuple[str, int, bool]:
    import re

    system = body.get("system")
    text = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system or [])
    m = re.search(r"Your role: the (\w+)", text)
    steps = sum(1 for msg in body["messages"] if msg["role"] == "assistant")
    return (m.group(1) if m else "unknown"), steps, (body.get("tool_choice") or {}).get("type") == "tool"


def replay_server(turns: list[dict[str, Any]]) -> Any:
    """The stand-in Messages API answering each request with its recorded turn (by agent, step, forced)."""
    from tests.fakes.anthropic_server import FakeAnthropic

    fake = FakeAnthropic().start()
    table = {(t["agent"], t["step"], t["forced"]): t["response"] for t in turns}
    fake.diverged = []

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        key = _agent_step(body)
        if key not in table:
            fake.diverged.append(key)
            return {"content": [{"type": "text", "text": f"replay diverged at {key}"}], "stop_reason": "refusal"}
        return json.loads(json.dumps(table[key]))

    fake.responder = respond
    return fake


class Recorder:
    """A ChatModel wrapper that records every turn (for ``--record`` against the real API)."""

    def __init__(self, inner: Any, log: list[dict[str, Any]]) -> None:
        self.inner, self.log = inner, log

    @property
    def model(self) -> str:
        return str(self.inner.model)

    def chat(self, **kw: Any) -> Any:
        turn = self.inner.chat(**kw)
        agent, step, forced = _agent_step({"system": kw["system"], "messages": kw["messages"],
                                           "tool_choice": kw.get("tool_choice")})
        self.log.append({"agent": agent, "step": step, "forced": forced, "response": {
            "content": turn.content, "stop_reason": turn.stop_reason,
            "usage": {"input_tokens": turn.usage.input_tokens, "output_tokens": turn.usage.output_tokens,
                      "cache_read_input_tokens": turn.usage.cache_read_tokens,
                      "cache_creation_input_tokens": turn.usage.cache_write_tokens}}})
        return turn


def score(report: dict[str, Any], case: dict[str, Any]) -> tuple[bool, list[str]]:
    """Strict: the expected culprit and every expected fact; returns (passed, what is missing)."""
    want = case["expect"]
    rc = report.get("root_cause") or {}
    missing = []
    if (rc.get("service"), rc.get("change_id")) != (want.get("service"), want.get("change_id")):
        missing.append(f"culprit {(rc.get('service'), rc.get('change_id'))} != {(want.get('service'), want.get('change_id'))}")
    text = render_report(report).lower()
    missing += [f"fact {f!r}" for f in case.get("facts") or [] if str(f).lower() not in text]
    return not missing, missing


def run_case(folder: Path, *, live: bool, record: bool, models: dict[str, str], scripted: bool = False
             ) -> dict[str, Any]:
    case = yaml.safe_load((folder / "case.yaml").read_text())
    tools = case_tools(folder, case)
    report, ctx, chg = run_engine(tools, case.get("trigger"))
    turns_file = folder / "turns.jsonl"
    log: list[dict[str, Any]] = []
    fake = None
    if scripted:
        from tests.fakes import scripted_models as sm
        from tests.fakes.anthropic_server import FakeAnthropic

        fake = FakeAnthropic().start()
        fake.responder = sm.typical()
        stand_in = {tier: AnthropicLLM(api_key=fake.api_key, base_url=fake.url, model=models[tier]) for tier in models}
        chat = lambda tier: Recorder(stand_in[tier], log)  # noqa: E731
    elif live:
        key, base = os.environ["ANTHROPIC_API_KEY"], os.environ.get("ANTHROPIC_BASE_URL")
        built = {tier: AnthropicLLM(api_key=key, base_url=base, model=models[tier], timeout_s=120.0) for tier in models}
        chat = (lambda tier: Recorder(built[tier], log)) if record else (lambda tier: built[tier])
    else:
        if not turns_file.is_file():
            return {"case": folder.name, "tag": case.get("tag"), "passed": False, "missing": ["no recorded turns"]}
        fake = replay_server([json.loads(line) for line in turns_file.read_text().splitlines() if line.strip()])
        replay = {tier: AnthropicLLM(api_key=fake.api_key, base_url=fake.url, model=models[tier], attempts=1)
                  for tier in models}
        chat = lambda tier: replay[tier]  # noqa: E731
    started = time.perf_counter()
    try:
        res = AgentTeam(chat).run(mode=case.get("mode", "balanced"), report=report, ctx=ctx, chg=chg, tools=tools)
    finally:
        if fake is not None:
            fake.stop()
    latency = time.perf_counter() - started
    if record and (live or scripted):
        turns_file.write_text("".join(json.dumps(t) + "\n" for t in log))
    passed, missing = score(res.report, case)
    if fake is not None and getattr(fake, "diverged", None):
        passed = False
        missing.append(f"replay diverged at {fake.diverged[0]}: re-record the case's turns")
    agents = res.report.get("agents") or {}
    if agents.get("status") != "done":
        passed = False
        missing.append(f"agents {agents.get('status')}: {(agents.get('decision') or {}).get('note', '')[:160]}")
    return {"case": folder.name, "tag": case.get("tag"), "passed": passed, "missing": missing,
            "tokens_in": agents.get("tokens_in", 0), "tokens_out": agents.get("tokens_out", 0),
            "cost_usd": agents.get("cost_usd", 0.0), "latency_s": round(latency, 2),
            "decision": (agents.get("decision") or {}).get("case")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replay", action="store_true", help="use the recorded turns even with a key set")
    parser.add_argument("--record", action="store_true", help="with a key: write the real turns into each case")
    parser.add_argument("--case", help="run one case (its folder name)")
    parser.add_argument("--record-scripted", action="store_true",
                        help="write turns.jsonl from the scripted stand-in model (no key needed; mark the case so)")
    parser.add_argument("--record-tools", metavar="CASE", help="write CASE/tools.json from its world's tool outputs")
    for tier in DEFAULT_MODELS:
        parser.add_argument(f"--model-{tier}", default=DEFAULT_MODELS[tier])
    args = parser.parse_args()
    if args.record_tools:
        folder = CASES / args.record_tools
        case = yaml.safe_load((folder / "case.yaml").read_text())
        rec = RecordingTools(world_tools(resolve(case["world"])))
        report, ctx, chg = run_engine(rec, case.get("trigger"))
        from tests.fakes import scripted_models as sm
        from tests.fakes.anthropic_server import FakeAnthropic

        fake = FakeAnthropic().start()  # the typical agent calls too, so a replay can answer them
        fake.responder = sm.typical()
        try:
            AgentTeam(lambda tier: AnthropicLLM(api_key=fake.api_key, base_url=fake.url)).run(
                mode="balanced", report=report, ctx=ctx, chg=chg, tools=rec)
        finally:
            fake.stop()
        out = folder / "tools.json.gz"
        out.write_bytes(gzip.compress(json.dumps(rec.recorded, separators=(",", ":")).encode(), mtime=0))
        print(f"wrote {len(rec.recorded)} tool outputs to {out}")
        return
    live = bool(os.environ.get("ANTHROPIC_API_KEY")) and not args.replay and not args.record_scripted
    if args.record and not live:
        raise SystemExit("--record needs ANTHROPIC_API_KEY (it records the real API's turns)")
    models = {tier: getattr(args, f"model_{tier}") for tier in DEFAULT_MODELS}
    folders = [CASES / args.case] if args.case else sorted(p for p in CASES.iterdir() if (p / "case.yaml").is_file())
    source = "scripted stand-in (recording)" if args.record_scripted else "real API" if live else "recorded turns"
    print(f"{source}; {len(folders)} case(s)")
    print(f"{'case':<26} {'tag':<7} {'result':<6} {'in':>7} {'out':>6} {'USD':>8} {'s':>6}  decision / missing")
    rows = [run_case(f, live=live, record=args.record or args.record_scripted, models=models,
                     scripted=args.record_scripted) for f in folders]
    for r in rows:
        print(f"{r['case']:<26} {r.get('tag') or '-':<7} {'PASS' if r['passed'] else 'FAIL':<6} "
              f"{r.get('tokens_in', 0):>7} {r.get('tokens_out', 0):>6} {r.get('cost_usd', 0.0):>8.4f} "
              f"{r.get('latency_s', 0.0):>6.2f}  {r.get('decision') or ''} {'; '.join(r['missing'])}")
    for tag in ("easy", "medium", "hard"):
        mine = [r for r in rows if r.get("tag") == tag]
        if mine:
            print(f"  {tag:<7} {sum(r['passed'] for r in mine)}/{len(mine)} passed")
    total = sum(r["passed"] for r in rows)
    print(f"  all     {total}/{len(rows)} passed; tokens in {sum(r.get('tokens_in', 0) for r in rows)}, "
          f"${sum(r.get('cost_usd', 0.0) for r in rows):.4f}")
    sys.exit(0 if total == len(rows) else 1)


if __name__ == "__main__":
    main()
