"""Provider kind -> its class, imported only when a ``sources.yaml`` names the kind."""

from __future__ import annotations

import importlib
from typing import Any

from sources.base import Provider
from store.errors import ConfigError
from store.sources_file import SourceEntry, SourcesFile

#: kind -> "module:Class". Every kind of store.sources_file.KINDS has one.
PROVIDERS: dict[str, str] = {
    "prometheus": "sources.prometheus:PrometheusProvider",
    "files": "sources.logfiles:FileLogsProvider",
    "loki": "sources.loki:LokiProvider",
    "alertmanager": "sources.alertmanager:AlertmanagerProvider",
    "events": "sources.events:EventsProvider",
    "github": "sources.github:GitHubProvider",
    "git": "sources.gitrepo:GitProvider",
    "kubernetes": "sources.kubernetes:KubernetesProvider",
    "file": "sources.topology:TopologyFileProvider",
    "jira": "sources.jira:JiraProvider",
    "slack": "sources.slack:SlackProvider",
    "mcp": "sources.external:ExternalMcpProvider",
}


def provider_class(kind: str) -> type[Provider]:
    """The class for ``kind``.

    Raises:
        ConfigError: unknown kind, or its module is not there yet.
    """
    target = PROVIDERS.get(kind)
    if target is None:
        raise ConfigError(f"no provider of kind {kind!r}; use one of {', '.join(sorted(PROVIDERS))}")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"the {kind!r} provider cannot be loaded ({exc}); this kind is not available") from None
    return cls  # type: ignore[no-any-return]


def build_provider(entry: SourceEntry, sources: SourcesFile, *, secrets: Any = None) -> Provider:
    """Build the provider of one entry.

    Raises:
        ConfigError: unknown kind or a bad setting (named).
    """
    return provider_class(entry.kind)(entry, sources, secrets=secrets)
