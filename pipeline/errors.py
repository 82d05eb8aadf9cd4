"""Errors of the pipeline room. Each carries a message that says what to do."""


class PipelineError(Exception):
    """Base class of pipeline errors a user may see."""


class BrokerUnavailable(PipelineError):
    """The message broker (Redis or RabbitMQ) cannot be reached."""


class BudgetExceeded(PipelineError):
    """An investigation spent more than its budget."""


class LeaseHeld(PipelineError):
    """Another worker is running this investigation right now."""

    def __init__(self, investigation_id: str, retry_after_s: float) -> None:
        super().__init__(f"{investigation_id} is being run by another worker; retrying in {retry_after_s:.0f}s")
        self.retry_after_s = retry_after_s


class LeaseLost(PipelineError):
    """This worker lost its lease on an investigation (paused or cut off past it; another took over).

    The run stops and writes nothing more; the worker holding the lease now carries on.
    """


class TriggerNotFound(PipelineError):
    """The ticket or alert an investigation was asked about does not exist where we looked.

    Not retried: the source answered (Jira's 404 is an answer). The message says what to do.
    """

    def __init__(self, kind: str, key: str, source: str | None) -> None:
        where = "Jira" if (source or "").lower() == "jira" else (f"the {source} source" if source else "our sources")
        noun = "ticket" if kind == "ticket" else "alert"
        super().__init__(
            f"no {noun} {key} in {where} — check the key; nothing was investigated. To investigate the words "
            f"as free text instead, ask again with them in quotes (\"{key}\")"
        )
        self.kind, self.key, self.source = kind, key, source


class BudgetRefused(PipelineError):
    """A monthly budget keeps a new investigation from starting; the message says who can approve and how."""
