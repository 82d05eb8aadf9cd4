"""Real sources: our MCP servers over the systems teams run (docs/sources.md).

The real counterpart of ``sandbox/``: one module per kind of system (Prometheus, log files,
Loki, Alertmanager, our own stored events, GitHub, git, Kubernetes, a topology file, Jira,
Slack, external MCP servers), each a :class:`sources.base.Provider` answering the capability
contracts of docs/contracts.md, served over MCP by :mod:`sources.server`. No product room
imports this package: the agents reach it only through the MCP gateway.
"""
