"""Errors of the commands room: each message tells the user what to do."""


class CommandError(Exception):
    """A request that cannot be carried out as asked."""


class BadRequest(CommandError):
    """The request is malformed; the message says which part and how to fix it."""


class NotAllowed(CommandError):
    """The requester may not do this (e.g. cancel someone else's investigation)."""


class BudgetStopped(NotAllowed):
    """A monthly budget keeps new investigations from starting; the message says how an admin approves."""


class UnknownTrigger(BadRequest):
    """The ticket or alert a request names does not exist where we look; nothing was recorded.

    The message (the pipeline's TriggerNotFound) says to check the key, or to ask again with the
    words in quotes to investigate them as free text.
    """


class PayloadError(BadRequest):
    """A delivery is not valid JSON or a field is missing or malformed (answer 400 naming ``field``)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class TooManyAlerts(PayloadError):
    """A delivery carries more alerts than PM_WEBHOOK_MAX_ALERTS (answer 400 saying how to split it)."""

    def __init__(self, count: int, cap: int) -> None:
        super().__init__(
            "alerts",
            f"field 'alerts' holds {count} alerts, more than the {cap} one delivery may carry "
            f"(PM_WEBHOOK_MAX_ALERTS); nothing was stored. Split the group: Alertmanager webhook_configs "
            f"max_alerts: {cap}, or a finer group_by",
        )
        self.count, self.cap = count, cap
