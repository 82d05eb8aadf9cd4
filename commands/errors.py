"""Errors of the commands room: each message tells the user what to do."""


class CommandError(Exception):
    """A request that cannot be carried out as asked."""


class BadRequest(CommandError):
    """The request is malformed; the message says which part and how to fix it."""


class NotAllowed(CommandError):
    """The requester may not do this (e.g. cancel someone else's investigation)."""


class BudgetStopped(NotAllowed):
    """A monthly budget keeps new investigations from starting; the message says how an admin approves."""
