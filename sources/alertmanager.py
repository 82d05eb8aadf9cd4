"""Alerts from a Prometheus Alertmanager (API v2): ``alerts: [{kind: alertmanager, url: ...}]``.

Alertmanager holds the alerts that are firing now (active, silenced, inhibited); once an alert
resolves it is forgotten. The ``events`` kind (our stored webhook history) keeps the alerts
Alertmanager already sent us, resolved ones included; list both under ``alerts:`` and the
gateway merges them (the same fingerprint is kept once).

Alertmanager's JSON stays in this module: each alert is normalised to the contract's
``{id, ts, source, service, severity, title, labels}`` with ``id`` = ``am-<fingerprint>`` (the
id our webhook listener gives the same alert) and ``ts`` = its ``startsAt``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from sandbox.args import opt_str, opt_time
from sandbox.errors import NotFoundError, ToolArgumentError
from sandbox.world import parse_ts
from sources.base import Provider, http_error, iso
from sources.errors import SourceError
from store.errors import ConfigError

#: Labels tried, after the configured ``service_label``, to name an alert's service.
SERVICE_FALLBACKS = ("service", "app", "job")
DEFAULT_MAX_ALERTS = 500
ID_PREFIX = "am-"
_MATCHER = re.compile(r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*$')


class AlertmanagerProvider(Provider):
    """``alerts: [{kind: alertmanager, url: http://127.0.0.1:9093}]``.

    Settings: ``url`` (required), ``service_label`` (default ``service``; fallbacks ``service``,
    ``app``, ``job``), ``silenced`` / ``inhibited`` (include silenced / inhibited alerts; default
    true: a silenced alert is still evidence), ``filter`` (a list of Alertmanager matchers such as
    ``'env="prod"'`` that scope this entry), ``max_alerts`` (default 500), ``timeout_s``, and
    ``token`` / ``username`` + ``password`` / ``headers`` for a proxy in front of it.

    Raises:
        ConfigError: a setting is missing or malformed (named).
    """

    KIND = "alertmanager"
    CAPABILITIES = ("alerts.list", "alerts.get")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.url(example="http://127.0.0.1:9093")
        self.service_label = self.opt_str("service_label", "service") or "service"
        self.silenced = self._opt_bool("silenced", True)
        self.inhibited = self._opt_bool("inhibited", True)
        self.max_alerts = self.opt_int("max_alerts", DEFAULT_MAX_ALERTS)
        raw_filter = self.opt("filter") or []
        if isinstance(raw_filter, str):
            raw_filter = [raw_filter]
        if not isinstance(raw_filter, list) or not all(isinstance(m, str) and _MATCHER.match(m) for m in raw_filter):
            raise ConfigError(f'{self.where}.filter: expected a list of matchers such as [\'env="prod"\']')
        self.matchers: list[str] = [m.strip() for m in raw_filter]
        self._client = httpx.Client(base_url=self.base, headers=self.auth_headers(), timeout=self.timeout_s)

    def _opt_bool(self, key: str, default: bool) -> bool:
        value = self.settings.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}.{key}: expected true or false, got {value!r}")
        return value

    @property
    def _name(self) -> str:
        return self.label

    # ------------------------------------------------------------ HTTP

    def _get(self, path: str, params: httpx.QueryParams | None = None) -> Any:
        """GET one API path and return its JSON.

        Raises:
            SourceError: unreachable, slow, an HTTP error, or a body that is not JSON.
        """
        try:
            resp = self._client.get(path, params=params)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise http_error(self._name, exc, hint=f"check {self.where}.url and that Alertmanager runs") from None
        try:
            return resp.json()
        except ValueError:
            snippet = resp.text.strip().replace("\n", " ")[:80]
            raise SourceError(
                f"{self._name}: {path} answered something that is not JSON ({snippet!r}); "
                f"check that {self.where}.url points at Alertmanager, not a proxy's login page"
            ) from None

    def _alerts(self, extra_matchers: list[str]) -> list[dict[str, Any]]:
        params: list[tuple[str, Any]] = [("active", "true"), ("silenced", _bool(self.silenced)), ("inhibited", _bool(self.inhibited)),
                  ("unprocessed", "true")]
        params += [("filter", m) for m in self.matchers + extra_matchers]
        body = self._get("/api/v2/alerts", httpx.QueryParams(params))
        if not isinstance(body, list) or not all(isinstance(a, dict) for a in body):
            raise SourceError(f"{self._name}: /api/v2/alerts did not answer a list of alerts; "
                              f"check that {self.where}.url points at Alertmanager (API v2, 0.16 or later)")
        return body

    # ------------------------------------------------------------ normalising

    def service_of(self, labels: dict[str, Any]) -> str | None:
        """The alert's service: the configured label, else the first of service, app, job."""
        for name in (self.service_label, *SERVICE_FALLBACKS):
            value = labels.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def _normalise(self, raw: dict[str, Any]) -> tuple[float, dict[str, Any]] | None:
        """``(startsAt epoch, contract alert)``, or None for an entry without fingerprint or startsAt."""
        fingerprint = raw.get("fingerprint")
        try:
            started = parse_ts(raw.get("startsAt"))
        except (ValueError, TypeError):
            return None
        if not isinstance(fingerprint, str) or not fingerprint:
            return None
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        annotations = raw.get("annotations") or {}
        title = annotations.get("summary") if isinstance(annotations, dict) else None
        return started, {
            "id": ID_PREFIX + fingerprint,
            "ts": iso(started),
            "source": "alertmanager",
            "service": self.service_of(labels),
            "severity": labels.get("severity"),
            "title": title or labels.get("alertname") or "",
            "labels": labels,
        }

    # ------------------------------------------------------------ capabilities

    def alerts_list(self, service: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        """Alerts Alertmanager holds whose ``startsAt`` is in ``[start, end)``, oldest first.

        Args:
            service: keep alerts of this service (by ``service_label`` and its fallbacks).
            start, end: ISO-8601 times (either may be omitted).

        Returns:
            ``{alerts: [...]}`` plus ``truncated`` when more than ``max_alerts`` matched.

        Raises:
            ToolArgumentError: a bad argument. SourceError: Alertmanager failed.
        """
        cap = "alerts.list"
        wanted = opt_str(cap, "service", service)
        t0, t1 = opt_time(cap, "start", start), opt_time(cap, "end", end)
        if wanted is None:
            raws = self._alerts([])
        else:
            # Alertmanager ANDs its matchers, so each label that may name the service is asked on its own;
            # the normalised service decides (an alert with service=a and app=b belongs to a only).
            raws = []
            for name in dict.fromkeys((self.service_label, *SERVICE_FALLBACKS)):
                raws += self._alerts([f'{name}="{_quote(wanted)}"'])
        found: dict[str, tuple[float, dict[str, Any]]] = {}
        for raw in raws:
            item = self._normalise(raw)
            if item is None:
                continue
            started, alert = item
            if (t0 is not None and started < t0) or (t1 is not None and started >= t1):
                continue
            if wanted is not None and alert["service"] != wanted:
                continue
            found.setdefault(alert["id"], item)
        ordered = [a for _, a in sorted(found.values(), key=lambda x: (x[0], x[1]["id"]))]
        result: dict[str, Any] = {"alerts": ordered[: self.max_alerts]}
        if len(ordered) > self.max_alerts:
            result["truncated"] = (f"{len(ordered)} alerts matched, the first {self.max_alerts} returned "
                                   f"(raise {self.where}.max_alerts or narrow the window)")
        return result

    def alerts_get(self, id: Any = None) -> dict[str, Any]:  # noqa: A002 - the contract names it id
        """One alert by id (``am-<fingerprint>`` or the bare fingerprint).

        Raises:
            ToolArgumentError: no id. NotFoundError: Alertmanager does not hold it (any more).
            SourceError: Alertmanager failed.
        """
        wanted = opt_str("alerts.get", "id", id)
        if wanted is None:
            raise ToolArgumentError("alerts.get: 'id' is required; pass an alert id such as am-3f2a9c1b0d4e5f67")
        fingerprint = wanted[len(ID_PREFIX):] if wanted.startswith(ID_PREFIX) else wanted
        if not re.fullmatch(r"[0-9a-fA-F]{1,32}", fingerprint):
            raise NotFoundError(f"alerts.get: {wanted!r} is not an Alertmanager alert id (am-<fingerprint>)")
        for raw in self._alerts([]):
            if raw.get("fingerprint") == fingerprint:
                item = self._normalise(raw)
                if item is not None:
                    return item[1]
        raise NotFoundError(
            f"alerts.get: {self._name} holds no alert {wanted!r} (it forgets resolved alerts; the events "
            "source keeps them)"
        )

    def check(self) -> str:
        """``Alertmanager 0.25.0, N active alerts`` from /api/v2/status and /api/v2/alerts.

        Raises:
            SourceError: Alertmanager cannot answer.
        """
        status = self._get("/api/v2/status")
        if not isinstance(status, dict) or not isinstance(status.get("versionInfo"), dict):
            raise SourceError(f"{self._name}: /api/v2/status has no versionInfo; check that "
                              f"{self.where}.url points at Alertmanager")
        version = status["versionInfo"].get("version") or "?"
        cluster = (status.get("cluster") or {}).get("status")
        # Silenced and inhibited alerts are listed too, but only the firing ones are "active" to an operator.
        count = sum(1 for a in self._alerts([]) if (a.get("status") or {}).get("state", "active") == "active")
        where = f" (cluster {cluster})" if cluster and cluster != "disabled" else ""
        return f"Alertmanager {version}{where}, {count} active alert{'s' if count != 1 else ''}"

    def close(self) -> None:
        self._client.close()


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _quote(value: str) -> str:
    """A matcher value inside double quotes: backslashes and quotes escaped (the caller's text is data)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
