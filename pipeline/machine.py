"""The durable investigation state machine.

One call of :meth:`Machine.advance` runs an investigation from its first unfinished phase to
the end. Every phase is bracketed by two transactions: one marks it running (counting the
attempt and appending ``phase_started``), one stores its output and appends ``phase_finished``.
A redelivered message (worker crash) therefore skips every phase whose checkpoint is done and
never redoes one. A lease on the investigation row keeps two messages for the same
investigation from running it at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline import phases as P
from pipeline.errors import BudgetExceeded, LeaseHeld
from pipeline.plan import PhaseState, Plan, check_plan
from store import agent_runs, checkpoints, outbox
from store import investigations as invs
from store.errors import ArtifactError, DatabaseUnavailable
from store.models import TERMINAL_STATUSES, utcnow

log = logging.getLogger(__name__)
#: Outputs larger than this go to the artifact store; the checkpoint keeps the key.
INLINE_OUTPUT_MAX = 32_000


def retryable_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying with backoff: tool failures and a database that blinked."""
    errors: list[type[BaseException]] = [OperationalError, DatabaseUnavailable]
    try:
        from agents.errors import ToolError

        errors.append(ToolError)
    except ImportError:  # the agents room may not be installed in a store-only deployment
        pass
    return tuple(errors)


class _Stop(Exception):
    """Internal: the investigation reached a terminal status mid-run."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class _TemplateState:
    """drain3 miner state of one domain, kept in the artifact store."""

    def __init__(self, artifacts: Any, domain: str | None) -> None:
        slug = "".join(c if c.isalnum() else "-" for c in (domain or "default").lower()).strip("-") or "default"
        self.key = f"templates/{slug}.drain3"
        self._artifacts = artifacts

    def load(self) -> bytes | None:
        return self._artifacts.get_bytes(self.key) if self._artifacts.exists(self.key) else None

    def save(self, data: bytes) -> None:
        self._artifacts.put_bytes(self.key, data)


class Machine:
    """Runs investigations phase by phase with checkpoints.

    Args:
        session: a context-manager factory giving a session that commits on success.
        artifacts: the ArtifactStore for large outputs, reports and drain3 state.
        plan: phase → function (see :mod:`pipeline.plan`).
        tools_factory: ``fn(investigation_dict) -> ToolSource`` (opened lazily per run).
        lease_s: how long a worker's claim on an investigation lasts without renewal.
        on_progress: called with the investigation id after each committed progress event.
    """

    def __init__(
        self,
        *,
        session: Callable[[], AbstractContextManager[Session]],
        artifacts: Any,
        plan: Plan,
        tools_factory: Callable[[dict[str, Any]], Any] | None = None,
        lease_s: float = 60.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        check_plan(plan)
        self._session = session
        self.artifacts = artifacts
        self.plan = plan
        self._tools_factory = tools_factory
        self.lease_s = lease_s
        self._on_progress = on_progress or (lambda _id: None)
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"

    # -- entry point --------------------------------------------------------------------
    def advance(self, investigation_id: str, *, final_attempt: bool = True) -> str:
        """Run ``investigation_id`` from its first unfinished phase to a terminal status.

        Args:
            final_attempt: whether a retryable failure now is the last one (then FAILED),
                or should propagate so the broker retries the message with backoff.

        Raises:
            LeaseHeld: another worker runs it now (retry the message later).
            Exception: a retryable error when ``final_attempt`` is False.

        Returns:
            The investigation's status when this call ends.
        """
        owner = f"{self.owner}-{threading.get_ident()}"
        with self._session() as s:
            inv = invs.get(session=s, investigation_id=investigation_id)
            if inv.status in TERMINAL_STATUSES:
                return inv.status
            if not invs.acquire_lease(session=s, investigation_id=investigation_id, owner=owner,
                                      ttl_s=self.lease_s):
                s.refresh(inv)
                left = (inv.lease_until - utcnow()).total_seconds() if inv.lease_until else self.lease_s
                raise LeaseHeld(investigation_id, max(1.0, left))
            s.refresh(inv)
            if inv.status == "QUEUED":
                inv.status = "RUNNING"
                inv.started_at = utcnow()
            inv_dict = invs.to_dict(inv)
        stop_heartbeat = self._start_heartbeat(investigation_id, owner)
        state = PhaseState(
            investigation=inv_dict,
            trigger={k: v for k, v in inv_dict["trigger"].items() if k != "window"},
            window=inv_dict["trigger"].get("window"),
            outputs={},
            template_state=_TemplateState(self.artifacts, inv_dict["domain"]),
            _tools_factory=_bind(self._tools_factory, inv_dict),
        )
        try:
            for phase, rnd in self._steps(investigation_id, state):
                self._run_step(investigation_id, phase, rnd, state, final_attempt)
            self._publish(investigation_id, state)
            return P.COMPLETE
        except _Stop as stop:
            return stop.status
        finally:
            stop_heartbeat()
            tools = state._tools
            if tools is not None and hasattr(tools, "close"):
                try:
                    tools.close()
                except Exception:  # closing must not hide the run's own outcome
                    log.warning("closing the tools of %s failed", investigation_id, exc_info=True)
            with self._session() as s:
                invs.release_lease(session=s, investigation_id=investigation_id, owner=owner)

    # -- the walk -----------------------------------------------------------------------
    def _steps(self, investigation_id: str, state: PhaseState) -> Iterator[tuple[str, int]]:
        """Yield each (phase, round) in order; the loop decisions read the finished outputs."""
        for phase in P.LEAD_PHASES:
            yield phase, 0
        for rnd in range(1, P.MAX_ROUNDS + 1):
            yield P.HYPOTHESES, rnd
            yield P.VERIFICATION, rnd
            ver = state.outputs.get("ver") or {}
            if ver.get("outcome") != P.DECLINED:
                break
            # a DECLINED verification sends its hypothesis back as rejected (seed 000 loop)
            state.rejected.append(ver.get("hypothesis") or state.outputs.get("hyp") or {})
        yield P.FIX_PLAN, 0
        yield P.REPORT, 0

    def _run_step(self, inv_id: str, phase: str, rnd: int, state: PhaseState, final_attempt: bool) -> None:
        name = P.OUTPUT_NAMES[phase]
        state.round = rnd
        with self._session() as s:
            cp = checkpoints.get(session=s, investigation_id=inv_id, phase=phase, round=rnd)
            if cp is not None and cp.status == "done":
                state.outputs[name] = self._load_output(cp.output, cp.output_ref)
                return
            inv = invs.get(session=s, investigation_id=inv_id, for_update=True)
            self._check_stop(s, inv)
            checkpoints.start(session=s, investigation_id=inv_id, phase=phase, round=rnd)
            inv.phase, inv.round = phase, rnd
            outbox.append(session=s, investigation_id=inv_id, kind="phase_started",
                          payload={"phase": phase, "round": rnd})
            run_id = agent_runs.start(session=s, investigation_id=inv_id, agent="evidence-engine",
                                      phase=phase, model="deterministic").id
        self._on_progress(inv_id)
        calls_before = len(getattr(state._tools, "calls", []) or [])
        state.usage = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
        started = time.perf_counter()
        try:
            output = self.plan[phase](state)
        except Exception as exc:
            self._phase_failed(inv_id, phase, rnd, run_id, state, calls_before, exc, final_attempt)
            raise _Stop(P.FAILED) from exc
        ms = int((time.perf_counter() - started) * 1000)
        inline, ref = self._store_output(inv_id, phase, rnd, output)
        with self._session() as s:
            checkpoints.finish(session=s, investigation_id=inv_id, phase=phase, round=rnd,
                               output=inline, output_ref=ref)
            agent_runs.finish(
                session=s, run_id=run_id, status="done", output_ref=ref,
                tokens_in=state.usage["tokens_in"], tokens_out=state.usage["tokens_out"],
                cost_usd=state.usage["cost_usd"], tool_calls=self._calls_since(state, calls_before),
            )
            outbox.append(session=s, investigation_id=inv_id, kind="phase_finished",
                          payload={"phase": phase, "round": rnd, "duration_ms": ms})
            if phase == P.VERIFICATION:
                self._milestone(s, inv_id, output)
            inv = invs.get(session=s, investigation_id=inv_id)
            over = self._over_budget(inv)
            if over:
                self._fail(s, inv, over)
        self._on_progress(inv_id)
        if over:
            raise _Stop(P.FAILED)
        state.outputs[name] = output

    def _publish(self, inv_id: str, state: PhaseState) -> None:
        """PUBLISHING: store the report, copy its headline onto the row, append the ``report`` event.

        Delivery to Slack/Jira happens afterwards from the outbox (pipeline.publishing).
        """
        report = state.outputs.get("rep") or {}
        with self._session() as s:
            inv = invs.get(session=s, investigation_id=inv_id, for_update=True)
            self._check_stop(s, inv)
            cp = checkpoints.get(session=s, investigation_id=inv_id, phase=P.PUBLISHING, round=0)
            if cp is None or cp.status != "done":
                checkpoints.start(session=s, investigation_id=inv_id, phase=P.PUBLISHING, round=0)
            key = self.artifacts.put_json(f"investigations/{inv_id}/report.json", report)
            inv.phase, inv.round = P.PUBLISHING, 0
            inv.report = report
            inv.verdict = report.get("verdict")
            inv.confidence = report.get("confidence")
            inv.root_cause = report.get("root_cause")
            inv.fix_plan = report.get("fix_plan")
            inv.hypotheses = report.get("hypotheses")
            outbox.append(session=s, investigation_id=inv_id, kind="report",
                          payload={"report": report, "report_ref": key})
            checkpoints.finish(session=s, investigation_id=inv_id, phase=P.PUBLISHING, round=0,
                               output={"report_ref": key}, output_ref=None)
            inv.status = inv.phase = P.COMPLETE
            inv.finished_at = utcnow()
        self._on_progress(inv_id)

    # -- helpers ------------------------------------------------------------------------
    def _check_stop(self, s: Session, inv: Any) -> None:
        """Stop between phases when a cancel was asked for or the budget is spent."""
        if inv.status in TERMINAL_STATUSES:
            raise _Stop(inv.status)
        if inv.cancel_requested:
            invs.mark_cancelled(session=s, inv=inv)
            s.commit()
            self._on_progress(inv.id)
            raise _Stop(P.CANCELLED)
        over = self._over_budget(inv)
        if over:
            self._fail(s, inv, over)
            s.commit()
            self._on_progress(inv.id)
            raise _Stop(P.FAILED)

    @staticmethod
    def _over_budget(inv: Any) -> str | None:
        if inv.budget_usd is not None and (inv.cost_usd or 0.0) > inv.budget_usd:
            return str(BudgetExceeded(
                f"budget exceeded: spent ${inv.cost_usd:.4f} of ${inv.budget_usd:.4f}; "
                "rerun with a larger budget_usd or mode=fast"
            ))
        return None

    @staticmethod
    def _fail(s: Session, inv: Any, error: str) -> None:
        inv.status = P.FAILED
        inv.error = error
        inv.finished_at = utcnow()
        outbox.append(session=s, investigation_id=inv.id, kind="failed", payload={"error": error, "phase": inv.phase})

    def _phase_failed(self, inv_id: str, phase: str, rnd: int, run_id: int, state: PhaseState,
                      calls_before: int, exc: Exception, final_attempt: bool) -> None:
        message = f"{phase} failed: {exc}"
        retry = isinstance(exc, retryable_errors()) and not final_attempt
        with self._session() as s:
            checkpoints.fail(session=s, investigation_id=inv_id, phase=phase, round=rnd, error=message)
            agent_runs.finish(session=s, run_id=run_id, status="failed", error=message,
                              tool_calls=self._calls_since(state, calls_before))
            if not retry:
                self._fail(s, invs.get(session=s, investigation_id=inv_id), message)
        self._on_progress(inv_id)
        if retry:
            log.warning("%s of %s failed, the broker will retry: %s", phase, inv_id, exc)
            raise exc
        log.error("%s of %s failed for good: %s", phase, inv_id, exc)

    @staticmethod
    def _calls_since(state: PhaseState, before: int) -> list[dict[str, Any]]:
        calls = list(getattr(state._tools, "calls", []) or [])[before:]
        return json.loads(json.dumps(calls, default=str))

    @staticmethod
    def _milestone(s: Session, inv_id: str, ver: dict[str, Any]) -> None:
        hyp = ver.get("hypothesis") or {}
        what = hyp.get("statement") or hyp.get("service") or "the hypothesis"
        text = f"Hypothesis {str(ver.get('outcome', '?')).lower()}: {what}"
        outbox.append(session=s, investigation_id=inv_id, kind="milestone", payload={"text": text})

    def _store_output(self, inv_id: str, phase: str, rnd: int, output: Any) -> tuple[Any, str | None]:
        data = json.dumps(output, separators=(",", ":"), default=str)
        if len(data) <= INLINE_OUTPUT_MAX:
            return json.loads(data), None
        key = f"investigations/{inv_id}/{phase.lower()}-r{rnd}.json"
        self.artifacts.put_bytes(key, data.encode(), "application/json")
        return None, key

    def _load_output(self, inline: Any, ref: str | None) -> Any:
        if ref is None:
            return inline
        try:
            return self.artifacts.get_json(ref)
        except ArtifactError as exc:
            raise ArtifactError(f"checkpoint output {ref} is gone ({exc}); rerun the investigation") from None

    def _start_heartbeat(self, inv_id: str, owner: str) -> Callable[[], None]:
        """Renew the lease every third of its life while this run is alive."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease_s / 3):
                try:
                    with self._session() as s:
                        invs.acquire_lease(session=s, investigation_id=inv_id, owner=owner, ttl_s=self.lease_s)
                except Exception:  # a missed beat only shortens the lease; the next one may succeed
                    log.warning("lease renewal of %s failed", inv_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"lease-{inv_id}", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)

        return halt


def _bind(factory: Any, inv_dict: dict[str, Any]) -> Any:
    """``factory`` with the investigation bound (phases open tools lazily), or None."""
    if factory is None:
        return None
    return lambda: factory(inv_dict)
