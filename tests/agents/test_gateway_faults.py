"""The gateway against a real misbehaving MCP server (a subprocess over stdio): timeouts, retries with
reconnect, the circuit breaker, tool errors that must not be retried, and clean shutdown."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agents.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from agents.errors import CircuitOpenError, ToolError
from agents.gateway import open_gateway

pytestmark = pytest.mark.integration

FAULTY_SERVER = '''
import os, sys, time
from pathlib import Path
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

counter = Path(sys.argv[1])
server = MCPServer("faulty")

@server.tool()
def slow(seconds: float) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}

@server.tool()
def crash_first(n: int) -> dict:
    """Kill the whole server process on the first n calls (counted in a file), then answer."""
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    if count < n:
        os._exit(3)
    return {"calls": count + 1}

@server.tool()
def pid() -> dict:
    return {"pid": os.getpid()}

@server.tool()
def picky(x: int) -> dict:
    if x < 0:
        raise ToolError("x must be >= 0; pass a positive x")
    return {"x": x}

server.run("stdio")
'''


def _config(tmp_path: Path, *, timeout_s: float = 5, retries: int = 0, failures: int = 5, reset_s: float = 30) -> dict:
    script = tmp_path / "faulty_server.py"
    script.write_text(FAULTY_SERVER)
    return {
        "servers": {"faulty": {"transport": "stdio", "command": "{python}",
                               "args": [str(script), str(tmp_path / "calls.txt")],
                               "timeout_s": timeout_s, "retries": retries, "backoff_s": 0.01}},
        "capabilities": {"x.slow": {"server": "faulty", "tool": "slow"},
                         "x.crash": {"server": "faulty", "tool": "crash_first"},
                         "x.pid": {"server": "faulty", "tool": "pid"},
                         "x.picky": {"server": "faulty", "tool": "picky"}},
        "circuit_breaker": {"failures": failures, "reset_s": reset_s},
    }


def _gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_timeouts_are_retried_then_open_the_circuit_which_recovers(tmp_path):
    config = _config(tmp_path, timeout_s=0.5, retries=1, failures=3, reset_s=1.0)
    with open_gateway(config, variables={}) as gw:
        assert gw.call("x.pid")["pid"] > 0  # connect first, so the timeouts below measure calls only
        t0 = time.monotonic()
        with pytest.raises(ToolError) as info:
            gw.call("x.slow", seconds=1.5)
        elapsed = time.monotonic() - t0
        assert "x.slow via MCP server 'faulty' (tool slow) failed after 2 attempt(s)" in str(info.value)
        assert "timed out" in str(info.value) or "-32001" in str(info.value)
        assert info.value.retryable and gw.calls[-1]["attempts"] == 2
        assert elapsed < 2.5  # both attempts were cut short (2 x 0.5 s), not waited out (2 x 1.5 s)
        # The third consecutive failure opens the circuit part-way through this call's retries.
        with pytest.raises(CircuitOpenError, match="circuit open after repeated failures"):
            gw.call("x.slow", seconds=1.5)
        t0 = time.monotonic()
        with pytest.raises(CircuitOpenError):
            gw.call("x.pid")
        assert time.monotonic() - t0 < 0.2 and gw.calls[-1]["attempts"] == 0
        time.sleep(1.1)  # reset_s passes: one trial call goes through and closes the circuit
        assert gw.call("x.pid")["pid"] > 0
        assert gw.call("x.picky", x=2) == {"x": 2}


def test_a_crashed_server_is_restarted_and_the_call_retried(tmp_path):
    with open_gateway(_config(tmp_path, retries=2), variables={}) as gw:
        first_pid = gw.call("x.pid")["pid"]
        assert gw.call("x.crash", n=1) == {"calls": 2}
        assert gw.calls[-1]["attempts"] == 2
        second_pid = gw.call("x.pid")["pid"]
        assert second_pid != first_pid and _gone(first_pid)
    assert _gone(second_pid)


def test_tool_errors_are_not_retried_and_sessions_are_reused(tmp_path):
    with open_gateway(_config(tmp_path, retries=3), variables={}) as gw:
        pid = gw.call("x.pid")["pid"]
        with pytest.raises(ToolError) as info:
            gw.call("x.picky", x=-1)
        assert "x.picky via MCP server 'faulty' (tool picky) failed" in str(info.value)
        assert "x must be >= 0; pass a positive x" in str(info.value)
        assert gw.calls[-1]["attempts"] == 1 and not info.value.retryable
        with pytest.raises(ToolError, match="failed: Error executing tool picky"):
            gw.call("x.picky", x="not a number")  # schema validation by the server: also not retried
        assert gw.calls[-1]["attempts"] == 1
        assert [gw.call("x.pid")["pid"] for _ in range(3)] == [pid] * 3
    assert _gone(pid)


def test_check_names_an_unreachable_server_and_a_missing_tool(tmp_path):
    dead = {"servers": {"dead": {"transport": "stdio", "command": "{python}",
                                 "args": ["-c", "import sys; sys.exit('error: world.yaml: not found; fix it')"]}},
            "capabilities": {"x.dead": {"server": "dead", "tool": "anything"}}}
    with open_gateway(dead, variables={}) as gw:
        with pytest.raises(ToolError) as info:
            gw.check()
    assert "MCP server 'dead' is unreachable" in str(info.value)
    assert "the server said: error: world.yaml: not found; fix it" in str(info.value)
    config = _config(tmp_path, timeout_s=5)
    config["capabilities"]["x.gone"] = {"server": "faulty", "tool": "no_such_tool"}
    with open_gateway(config, variables={}) as gw:
        with pytest.raises(ToolError, match="MCP server 'faulty' does not offer tool 'no_such_tool'"):
            gw.check()


def test_circuit_breaker_state_machine():
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_s=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow() and breaker.retry_in() == 10
    now[0] = 10.0
    assert breaker.state == HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # a single trial call at a time
    breaker.record_failure()  # the trial failed: open again for another reset_s
    assert breaker.state == OPEN
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow()
