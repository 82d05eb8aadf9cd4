"""The durable investigation state machine.

One call of :meth:`Machine.advance` runs an investigation from its first unfinished phase to
the end. Every phase is bracketed by two transactions: one marks it running (counting the
attempt and appending ``phase_started``), one stores its output and appends ``phase_finished``.
A redelivered message (worker crash) therefore skips every phase whose checkpoint is done and
never redoes one. A lease on the investigation row keeps two messages for the same
investigation from running it at once.

Fencing: each take-over of the lease bumps a token on the row, and every transaction the run
commits begins by checking (and locking) that token (:func:`store.investigations.fence`), so a
worker that was paused or cut off past its lease cannot write a checkpoint, an outbox event or a
status once another worker took over. Its heartbeat notices the loss too and the run stops at
once: phases run on a thread of their own, and the run stops waiting for an abandoned one (whose
tool calls then fail fast, see :class:`_Abandonable`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline import metrics
from pipeline import phases as P
from pipeline.budgets import over_cap, partial_report
from pipeline.errors import BudgetExceeded, LeaseHeld, LeaseLost, TriggerNotFound
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


class _Partial(Exception):
    """Internal: the investigation reached its budget cap; publish what it found, marked partial."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stop(Exception):
    """Internal: the investigation reached a terminal status mid-run."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


LEASE_LOST = "LEASE_LOST"  # what advance() returns when the run stopped because it lost its lease


class _Lease:
    """The lease this run holds: owner, fencing token, and whether it was lost."""

    def __init__(self, investigation_id: str, owner: str, token: int, ttl_s: float) -> None:
        self.investigation_id, self.owner, self.token, self.ttl_s = investigation_id, owner, token, ttl_s
        self.lost = threading.Event()
        self.reason = ""
        # When the lease runs out as far as this process knows (monotonic: a pause counts).
        self.expires = time.monotonic() + ttl_s

    def lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()
            metrics.LEASES_LOST.inc()
            log.warning("lease of %s (token %d) lost: %s; the run stops and writes nothing more",
                        self.investigation_id, self.token, reason)


class _Abandonable:
    """The run's tools; every call fails fast once the run lost its lease (it could not write anyway)."""

    def __init__(self, inner: Any, abandoned: threading.Event) -> None:
        self._inner, self._abandoned = inner, abandoned

    def call(self, capability: str, **args: Any) -> Any:
        if self._abandoned.is_set():
            raise LeaseLost("the run lost its lease; tool calls are cancelled")
        return self._inner.call(capability, **args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _PhaseThread:
    """One thread that runs the phases of one run in turn (tools stay on one thread).

    The run waits for a phase while watching its lease; when the lease is lost it stops waiting
    and the thread is left to finish (or fail) the abandoned phase on its own, writing nothing.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box["out"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting run
                box["exc"] = exc
            finally:
                done.set()

    def run(self, fn: Callable[[], Any], lease: _Lease) -> Any:
        """``fn()`` on this thread; raises LeaseLost as soon as ``lease`` is lost."""
        box: dict[str, Any] = {}
        done = threading.Event()
        ctx = contextvars.copy_context()  # log records of the phase keep the job's investigation id
        self._jobs.put((lambda: ctx.run(fn), box, done))
        while not done.wait(0.1):
            if lease.lost.is_set():
                raise LeaseLost(f"{lease.investigation_id}: {lease.reason}")
        if "exc" in box:
            raise box["exc"]
        return box["out"]

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on this thread after whatever it is doing now; nobody waits for it."""
        self._jobs.put((fn, {}, threading.Event()))

    def close(self) -> None:
        self._jobs.put(None)


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
        budgets: :class:`pipeline.budgets.Budgets`: the investigation's cap (default
            PM_BUDGET_INVESTIGATION_USD) and the hooks phases get as ``state.budget``; None: only
            an investigation's own ``budget_usd`` caps it.
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
        budgets: Any = None,
    ) -> None:
        check_plan(plan)
        self.budgets = budgets
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
            The investigation's status when this call ends, or :data:`LEASE_LOST` when the run
            stopped because another worker took the investigation over (it carries on there).
        """
        owner = f"{self.owner}-{threading.get_ident()}"
        with self._session() as s:
            inv = invs.get(session=s, investigation_id=investigation_id)
            if inv.status in TERMINAL_STATUSES:
                return inv.status
            token = invs.acquire_lease(session=s, investigation_id=investigation_id, owner=owner, ttl_s=self.lease_s)
            if token is None:
                s.refresh(inv)
                left = (inv.lease_until - utcnow()).total_seconds() if inv.lease_until else self.lease_s
                raise LeaseHeld(investigation_id, max(1.0, left))
            s.refresh(inv)
            if inv.status == "QUEUED":
                inv.status = "RUNNING"
                inv.started_at = utcnow()
            inv_dict = invs.to_dict(inv)
        lease = _Lease(investigation_id, owner, token, self.lease_s)
        stop_heartbeat = self._start_heartbeat(lease)
        state = PhaseState(
            investigation=inv_dict,
            trigger={k: v for k, v in inv_dict["trigger"].items() if k != "window"},
            window=inv_dict["trigger"].get("window"),
            outputs={},
            template_state=_TemplateState(self.artifacts, inv_dict["domain"]),
        )
        state.abandoned = lease.lost
        state._tools_factory = _bind(self._tools_factory, inv_dict, lease.lost)
        runner = _PhaseThread(f"phases-{investigation_id}")
        try:
            partial: str | None = None
            try:
                for phase, rnd in self._steps(investigation_id, state):
                    self._run_step(lease, runner, phase, rnd, state, final_attempt)
            except _Partial as stopped:  # the cap was reached: publish what the finished phases found
                partial = stopped.reason
            self._publish(lease, state, partial=partial)
            return P.COMPLETE
        except _Stop as stop:
            return stop.status
        except LeaseLost:
            lease.lose("a write was refused")  # no-op when the heartbeat said so first
            return LEASE_LOST
        finally:
            stop_heartbeat()
            if lease.lost.is_set():
                # an abandoned phase may still be using (or opening) the tools: close them after it,
                # on its thread
                runner.submit(lambda: _close_quietly(state._tools, investigation_id))
            else:
                _close_quietly(state._tools, investigation_id)
            runner.close()
            if not lease.lost.is_set():
                try:
                    with self._session() as s:
                        invs.release_lease(session=s, investigation_id=investigation_id, owner=owner, token=token)
                except Exception:  # the lease runs out on its own; do not hide the run's outcome
                    log.warning("releasing the lease of %s failed", investigation_id, exc_info=True)

    @contextmanager
    def _fenced(self, lease: _Lease) -> Iterator[Session]:
        """A transaction that commits only while ``lease`` is still this run's (see module doc).

        Raises:
            LeaseLost: the lease was taken over; nothing of the block is written.
        """
        if lease.lost.is_set():
            self._refused(lease, "the lease was already lost")
        with self._session() as s:
            if not invs.fence(session=s, investigation_id=lease.investigation_id, owner=lease.owner,
                              token=lease.token):
                lease.lose("another worker took the investigation over")
                self._refused(lease, "another worker holds the lease now")
            yield s

    @staticmethod
    def _refused(lease: _Lease, why: str) -> None:
        metrics.FENCED_WRITES.inc()
        log.warning("refused a write to %s from a stale run (token %d): %s", lease.investigation_id,
                    lease.token, why)
        raise LeaseLost(f"{lease.investigation_id}: {why}")

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

    def _run_step(self, lease: _Lease, runner: _PhaseThread, phase: str, rnd: int, state: PhaseState,
                  final_attempt: bool) -> None:
        inv_id = lease.investigation_id
        name = P.OUTPUT_NAMES[phase]
        state.round = rnd
        with self._session() as s:
            cp = checkpoints.get(session=s, investigation_id=inv_id, phase=phase, round=rnd)
            if cp is not None and cp.status == "done":
                state.outputs[name] = self._load_output(cp.output, cp.output_ref)
                return
        with self._fenced(lease) as s:
            inv = invs.get(session=s, investigation_id=inv_id, for_update=True)
            self._check_stop(s, inv)
            checkpoints.start(session=s, investigation_id=inv_id, phase=phase, round=rnd)
            inv.phase, inv.round = phase, rnd
            spent_before = float(inv.cost_usd or 0.0)
            agent_runs.abandon_running(session=s, investigation_id=inv_id, phase=phase)
            outbox.append(session=s, investigation_id=inv_id, kind="phase_started",
                          payload={"phase": phase, "round": rnd})
            run_id = agent_runs.start(session=s, investigation_id=inv_id, agent="evidence-engine",
                                      phase=phase, model="deterministic").id
        self._on_progress(inv_id)
        calls_before = len(getattr(state._tools, "calls", []) or [])
        state.usage = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
        state.agent_runs = []
        state.budget = self.budgets.for_phase(inv_id, phase) if self.budgets is not None else None
        started = time.perf_counter()
        try:
            output = runner.run(lambda: self.plan[phase](state), lease)
        except LeaseLost:
            raise
        except BudgetExceeded as exc:  # a model call found the cap reached: stop, publish what is known
            self._phase_stopped(lease, phase, rnd, run_id, state, calls_before, str(exc))
            raise _Partial(str(exc)) from exc
        except Exception as exc:
            if state.budget is not None:
                state.budget.close("failed", str(exc))
            self._phase_failed(lease, phase, rnd, run_id, state, calls_before, exc, final_attempt)
            raise _Stop(P.FAILED) from exc
        if state.budget is not None:
            state.budget.close()
        ms = int((time.perf_counter() - started) * 1000)
        with self._fenced(lease) as s:
            # written under the fence, so a stale run never replaces the output a checkpoint names
            inline, ref = self._store_output(inv_id, phase, rnd, output)
            checkpoints.finish(session=s, investigation_id=inv_id, phase=phase, round=rnd,
                               output=inline, output_ref=ref)
            agent_runs.finish(
                session=s, run_id=run_id, status="done", output_ref=ref,
                tokens_in=state.usage["tokens_in"], tokens_out=state.usage["tokens_out"],
                cost_usd=state.usage["cost_usd"], tool_calls=self._calls_since(state, calls_before),
            )
            for extra in state.agent_runs:  # the LLM agents that worked in this phase, one row each
                row = agent_runs.start(session=s, investigation_id=inv_id, agent=str(extra["agent"]),
                                       phase=phase, model=str(extra.get("model") or "unknown"))
                agent_runs.finish(session=s, run_id=row.id, status=str(extra.get("status") or "done"),
                                  tokens_in=int(extra.get("tokens_in") or 0),
                                  tokens_out=int(extra.get("tokens_out") or 0),
                                  cost_usd=float(extra.get("cost_usd") or 0.0), error=extra.get("error"),
                                  tool_calls=json.loads(json.dumps(extra.get("tool_calls") or [], default=str)))
            outbox.append(session=s, investigation_id=inv_id, kind="phase_finished",
                          payload={"phase": phase, "round": rnd, "duration_ms": ms})
            if phase == P.VERIFICATION:
                self._milestone(s, inv_id, output)
            inv = invs.get(session=s, investigation_id=inv_id)
            over = self._over_budget(inv)
            spent = float(inv.cost_usd or 0.0) > spent_before
        self._on_progress(inv_id)
        if spent and self.budgets is not None:
            # spend recorded at the phase's end (not call by call) may have crossed a monthly threshold
            self.budgets.check_notices(inv_id)
        state.outputs[name] = output
        if over:
            raise _Partial(over)

    def _publish(self, lease: _Lease, state: PhaseState, *, partial: str | None = None) -> None:
        """PUBLISHING: store the report, copy its headline onto the row, append the ``report`` event.

        With ``partial`` (the investigation reached its budget cap), the report is what the finished
        phases found, marked partial (:func:`pipeline.budgets.partial_report`).
        Delivery to Slack/Jira happens afterwards from the outbox (pipeline.publishing).
        """
        inv_id = lease.investigation_id
        report = state.outputs.get("rep") or {}
        if partial is not None:
            with self._session() as s:
                done = [c.phase for c in checkpoints.list_for(session=s, investigation_id=inv_id)
                        if c.status == "done"]
            report = partial_report(state.outputs, reason=partial, phases_done=list(dict.fromkeys(done)))
        with self._fenced(lease) as s:
            inv = invs.get(session=s, investigation_id=inv_id, for_update=True)
            self._check_stop(s, inv, budget=partial is None)
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
            if inv.error and inv.error.startswith(invs.CANCELLED_BY):  # asked too late: it finished first
                inv.error = None
        self._on_progress(inv_id)

    # -- helpers ------------------------------------------------------------------------
    def _check_stop(self, s: Session, inv: Any, *, budget: bool = True) -> None:
        """Stop between phases when a cancel was asked for or the budget is spent (then publish
        what was found, marked partial)."""
        if inv.status in TERMINAL_STATUSES:
            raise _Stop(inv.status)
        if inv.cancel_requested:
            invs.mark_cancelled(session=s, inv=inv)
            s.commit()
            self._on_progress(inv.id)
            raise _Stop(P.CANCELLED)
        over = self._over_budget(inv) if budget else None
        if over:
            raise _Partial(over)

    def _over_budget(self, inv: Any) -> str | None:
        """Why the investigation must stop at its cap (reached), or None."""
        return over_cap(policy=getattr(self.budgets, "policy", None), cost_usd=float(inv.cost_usd or 0.0),
                        budget_usd=inv.budget_usd)

    @staticmethod
    def _fail(s: Session, inv: Any, error: str, reason: str | None = None) -> None:
        inv.status = P.FAILED
        inv.error = error
        inv.finished_at = utcnow()
        payload = {"error": error, "phase": inv.phase, **({"reason": reason} if reason else {})}
        outbox.append(session=s, investigation_id=inv.id, kind="failed", payload=payload)

    def _phase_stopped(self, lease: _Lease, phase: str, rnd: int, run_id: int, state: PhaseState,
                       calls_before: int, why: str) -> None:
        """A phase interrupted by the budget: its checkpoint fails (a re-run would redo it), its runs stop."""
        if state.budget is not None:
            state.budget.close("stopped", why)
        with self._fenced(lease) as s:
            checkpoints.fail(session=s, investigation_id=lease.investigation_id, phase=phase, round=rnd, error=why)
            agent_runs.finish(session=s, run_id=run_id, status="stopped", error=why,
                              tool_calls=self._calls_since(state, calls_before))
        self._on_progress(lease.investigation_id)

    def _phase_failed(self, lease: _Lease, phase: str, rnd: int, run_id: int, state: PhaseState,
                      calls_before: int, exc: Exception, final_attempt: bool) -> None:
        inv_id = lease.investigation_id
        # A trigger that does not exist is the user's to fix, not a phase failure: its message stands alone.
        message = str(exc) if isinstance(exc, TriggerNotFound) else f"{phase} failed: {exc}"
        retry = isinstance(exc, retryable_errors()) and not final_attempt
        with self._fenced(lease) as s:
            checkpoints.fail(session=s, investigation_id=inv_id, phase=phase, round=rnd, error=message)
            agent_runs.finish(session=s, run_id=run_id, status="failed", error=message,
                              tool_calls=self._calls_since(state, calls_before))
            if not retry:
                self._fail(s, invs.get(session=s, investigation_id=inv_id), message,
                           "trigger_not_found" if isinstance(exc, TriggerNotFound) else None)
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

    def _start_heartbeat(self, lease: _Lease) -> Callable[[], None]:
        """Renew the lease every third of its life while this run is alive.

        A renewal the database refuses (another worker took over) loses the lease at once; when
        renewals keep failing (database unreachable) until the lease ran out as far as this
        process can tell, it is lost too, since another worker may have taken over by then.
        """
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(lease.ttl_s / 3):
                try:
                    with self._session() as s:
                        held = invs.renew_lease(session=s, investigation_id=lease.investigation_id,
                                                owner=lease.owner, token=lease.token, ttl_s=lease.ttl_s)
                except Exception:  # a missed beat only shortens the lease; the next one may succeed
                    log.warning("lease renewal of %s failed", lease.investigation_id, exc_info=True)
                    if time.monotonic() > lease.expires:
                        lease.lose("it ran out while the database could not be reached")
                        return
                    continue
                if not held:
                    lease.lose("another worker took the investigation over")
                    return
                lease.expires = time.monotonic() + lease.ttl_s

        thread = threading.Thread(target=beat, name=f"lease-{lease.investigation_id}", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)

        return halt


def _close_quietly(tools: Any, investigation_id: str) -> None:
    if tools is None or not hasattr(tools, "close"):
        return
    try:
        tools.close()
    except Exception:  # closing must not hide the run's own outcome
        log.warning("closing the tools of %s failed", investigation_id, exc_info=True)


def _bind(factory: Any, inv_dict: dict[str, Any], abandoned: threading.Event) -> Any:
    """``factory`` with the investigation bound (phases open tools lazily), or None."""
    if factory is None:
        return None

    def open_tools() -> Any:
        tools = factory(inv_dict)
        return None if tools is None else _Abandonable(tools, abandoned)

    return open_tools
