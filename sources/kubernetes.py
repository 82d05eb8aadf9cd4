"""Changes from a Kubernetes namespace: Deployment rollouts and manual scaling.

``changes: [{kind: kubernetes, namespace: shop, kubeconfig: ~/.kube/config, services: {checkout-api: checkout}}]``
(or ``in_cluster: true`` inside a pod with a service account).

* Rollouts: every ReplicaSet owned by a Deployment carries a ``deployment.kubernetes.io/revision``
  annotation; each revision is a deploy (id ``k8s-<ns>-<deployment>-<revision>``) at the
  ReplicaSet's ``creationTimestamp``; version = its containers' image tags, previous_version = the
  revision before's. A rollback re-activates an old ReplicaSet under a new revision: its time is
  then that of the controller's "Scaled up replica set" event when one is still kept.
* Scaling: the deployment controller's ``ScalingReplicaSet`` events that are not part of a rollout
  (no ReplicaSet of that Deployment appeared within ``rollout_window_s`` before) are infra changes
  ``{resource: deployment/x, action: scaled 3 -> 5}``. Kubernetes keeps events about an hour
  (the API server's ``--event-ttl``), so older scaling is not seen.

Read through the official ``kubernetes`` client with ``_request_timeout`` from ``timeout_s``, no
retries, lists paged by ``page_size`` with at most ``max_pages`` pages (a ``truncated`` note says
when the cap cut one short).
"""

from __future__ import annotations

import re
import time
from typing import Any

from sources.base import Provider, iso
from sources.changewindow import ChangeQuery, change_query, epoch, sort_changes
from sources.errors import SourceError
from store.errors import ConfigError

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
PARTS = ("rollouts", "scaling")
_SCALED = re.compile(r"^Scaled (up|down) replica set (\S+) (?:from (\d+) )?to (\d+)(?: from (\d+))?")


class KubernetesProvider(Provider):
    """A ``changes`` entry of kind ``kubernetes`` over one namespace.

    Settings: ``namespace`` (required), ``kubeconfig`` (default ~/.kube/config) and ``context``, or
    ``in_cluster: true``; ``services`` (Deployment name -> service; when given, only those
    Deployments are read, else every Deployment under its own name); ``include`` (rollouts, scaling);
    ``page_size`` (250), ``max_pages`` (4), ``rollout_window_s`` (900), ``timeout_s`` (10).

    Raises:
        ConfigError: a missing or malformed setting (named).
    """

    KIND = "kubernetes"
    CAPABILITIES = ("changes.list",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace = self.opt_str("namespace", required=True, example="shop") or ""
        self.in_cluster = self.opt("in_cluster", False)
        if not isinstance(self.in_cluster, bool):
            raise ConfigError(f"{self.where}.in_cluster: expected true or false")
        kubeconfig = self.opt_str("kubeconfig")
        if kubeconfig and self.in_cluster:
            raise ConfigError(f"{self.where}: give kubeconfig: or in_cluster: true, not both")
        self.kubeconfig = self.sources.resolve_path(kubeconfig or "~/.kube/config")
        self.context = self.opt_str("context")
        self.services = {str(k): str(v) for k, v in self.opt_map("services").items()}
        include = self.opt("include", list(PARTS))
        if isinstance(include, str):
            include = [include]
        if not isinstance(include, list) or not include or any(p not in PARTS for p in include):
            raise ConfigError(f"{self.where}.include: expected a list of {', '.join(PARTS)}, got {include!r}")
        self.include = tuple(include)
        self.page_size = self.opt_int("page_size", 250)
        self.max_pages = self.opt_int("max_pages", 4)
        self.rollout_window_s = self.opt_float("rollout_window_s", 900.0)
        self._api_client: Any = None
        self._deadline = 0.0

    @property
    def label(self) -> str:
        where = "in-cluster" if self.in_cluster else str(self.kubeconfig)
        return f"kubernetes {self.namespace} ({where}{', ' + self.context if self.context else ''})"

    # ------------------------------------------------------------ the client

    def _client(self) -> Any:
        """The ApiClient from the kubeconfig (or the pod's service account), without retries.

        Raises:
            SourceError: the kubeconfig cannot be read or names no usable context.
        """
        if self._api_client is None:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException

            cfg = client.Configuration()
            try:
                if self.in_cluster:
                    config.load_incluster_config(client_configuration=cfg)
                else:
                    config.load_kube_config(config_file=str(self.kubeconfig), context=self.context,
                                            client_configuration=cfg, persist_config=False)
            except (ConfigException, OSError, ValueError, TypeError) as exc:
                what = "the pod's service account" if self.in_cluster else f"kubeconfig {self.kubeconfig}"
                raise SourceError(f"{self.label}: cannot load {what} ({str(exc)[:160]}); check "
                                  f"{self.where}.kubeconfig/context or in_cluster") from None
            _bearer_compat(cfg)
            cfg.retries = False  # a refused connection is reported at once, not retried three times
            self._api_client = client.ApiClient(cfg)
        return self._api_client

    def close(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    def _list(self, what: str, call: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        """Every item of a paged list call (``limit``/``continue``), at most ``max_pages`` pages.

        Returns:
            The items and a truncation note or None.

        Raises:
            SourceError: the API server refused, failed, timed out or answered garbage.
        """
        items: list[Any] = []
        token: str | None = None
        for _ in range(self.max_pages):
            # Each request gets what is left of the call's timeout_s, so the whole call stays within it.
            remaining = self._deadline - time.monotonic()
            if remaining <= 0.05:
                return items, (f"{self.label}: {what} not all read, the call's time (timeout_s: "
                               f"{self.timeout_s:g}) was spent; raise timeout_s:")
            args = dict(kwargs, limit=self.page_size, _request_timeout=remaining)
            if token:
                args["_continue"] = token
            try:
                page = self._guard(what, lambda a=args: call(self.namespace, **a))
            except SourceError:
                if items and time.monotonic() >= self._deadline - 0.05:
                    # a later page ran into the call's budget: answer with what was read, said so
                    return items, (f"{self.label}: {what} not all read, the call's time (timeout_s: "
                                   f"{self.timeout_s:g}) was spent; raise timeout_s:")
                raise
            if not isinstance(getattr(page, "items", None), list):
                raise SourceError(f"{self.label}: the {what} list has no items; check the kubeconfig's server")
            items += page.items
            token = getattr(page.metadata, "_continue", None) if page.metadata is not None else None
            if not token:
                return items, None
        return items, (f"{self.label}: {what} stopped after {self.max_pages} pages of {self.page_size}; raise "
                       "max_pages: or page_size:")

    def _guard(self, what: str, work: Any) -> Any:
        """Run one API call, turning client failures into a SourceError that says what to check."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            return work()
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 401:
                raise SourceError(f"{self.label}: HTTP 401 unauthorised listing {what}; check the token or "
                                  "certificate of the kubeconfig's user (kubeconfig:, context:)") from None
            if status == 403:
                raise SourceError(f"{self.label}: HTTP 403 forbidden listing {what}; grant the account list on "
                                  f"{what} in namespace {self.namespace} (a Role and RoleBinding)") from None
            body = str(exc.body or exc.reason or "").strip().replace("\n", " ")[:160]
            raise SourceError(f"{self.label}: HTTP {status} listing {what}: {body}") from None
        except (urllib3.exceptions.NewConnectionError, ConnectionError) as exc:
            # before the timeouts: urllib3's NewConnectionError is a ConnectTimeoutError subclass
            raise SourceError(f"{self.label}: cannot reach the API server ({type(exc).__name__}: "
                              f"{str(exc)[:120]}); check the kubeconfig's server and the network") from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise SourceError(f"{self.label}: listing {what} timed out after {self.timeout_s:g}s; raise "
                              "timeout_s: or check the API server") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SourceError(f"{self.label}: cannot reach the API server ({type(exc).__name__}: "
                              f"{str(exc)[:120]}); check the kubeconfig's server and the network") from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise SourceError(f"{self.label}: the API server answered something that is not a Kubernetes "
                              f"{what} list ({str(exc)[:100]}); check the kubeconfig's server") from None

    # ------------------------------------------------------------ answering

    def changes_list(self, service: Any = None, kind: Any = None, start: Any = None,
                     end: Any = None) -> dict[str, Any]:
        """``changes.list``: rollouts (deploy) and scaling (infra) in ``[start, end)``, sorted by time.

        Raises:
            ToolArgumentError: a bad argument.
            SourceError: the API server cannot be read (the message says what to change).
        """
        q = change_query(self.sources.lookback_s, service, kind, start, end)
        if self.services and q.service is not None and q.service not in self.services.values():
            return {"changes": []}
        want_rollouts = "rollouts" in self.include and q.wants_kind("deploy")
        want_scaling = "scaling" in self.include and q.wants_kind("infra")
        if not want_rollouts and not want_scaling:
            return {"changes": []}
        from kubernetes import client

        api = self._client()
        self._deadline = time.monotonic() + self.timeout_s
        notes: list[str] = []
        # ReplicaSets are read for scaling too: they tell a rollout's scaling from a manual one.
        replica_sets, cut = self._list("replicasets", client.AppsV1Api(api).list_namespaced_replica_set)
        if cut:
            notes.append(cut)
        events: list[Any] = []
        if want_scaling or any(_annotations(rs).get(REVISION_HISTORY) for rs in replica_sets):
            events, cut = self._list("events", client.CoreV1Api(api).list_namespaced_event,
                                     field_selector="reason=ScalingReplicaSet")
            if cut:
                notes.append(cut)
        scaled_up = _scaled_up_times(events)
        revisions = self._revisions(replica_sets, scaled_up)
        changes: list[dict[str, Any]] = []
        if want_rollouts:
            changes += self._rollouts(revisions, q)
        if want_scaling:
            changes += self._scaling(events, revisions, q)
        result: dict[str, Any] = {"changes": sort_changes(changes)}
        if notes:
            result["truncated"] = "; ".join(notes)
        return result

    def check(self) -> str:
        """List one Deployment of the namespace."""
        from kubernetes import client

        page = self._guard("deployments", lambda: client.AppsV1Api(self._client()).list_namespaced_deployment(
            self.namespace, limit=1, _request_timeout=self.timeout_s))
        return f"namespace {self.namespace} reachable ({'has' if page.items else 'no'} deployments)"

    # ------------------------------------------------------------ normalising

    def _service(self, deployment: str) -> str | None:
        """The service of a Deployment, or None when a services map is given and does not name it."""
        if self.services:
            return self.services.get(deployment)
        return deployment

    def _revisions(self, replica_sets: list[Any], scaled_up: dict[str, float]) -> dict[str, list[dict[str, Any]]]:
        """Deployment -> its revisions, oldest first: ``{rev, rs, ts, version, cause}``."""
        by_deploy: dict[str, list[dict[str, Any]]] = {}
        for rs in replica_sets:
            owner = next((o.name for o in (rs.metadata.owner_references or []) if o.kind == "Deployment"), None)
            rev_text = _annotations(rs).get(REVISION, "")
            if owner is None or not rev_text.isdigit() or self._service(owner) is None:
                continue
            ts = epoch(rs.metadata.creation_timestamp)
            if ts is None:
                raise SourceError(f"{self.label}: replicaset {rs.metadata.name} has no creationTimestamp")
            if _annotations(rs).get(REVISION_HISTORY) and rs.metadata.name in scaled_up:
                # Rolled back to: it became current again when the controller last scaled it up.
                ts = max(ts, scaled_up[rs.metadata.name])
            containers = rs.spec.template.spec.containers if rs.spec and rs.spec.template and rs.spec.template.spec \
                else []
            by_deploy.setdefault(owner, []).append({
                "rev": int(rev_text), "rs": rs.metadata.name, "ts": ts, "version": _version(containers),
                "cause": _annotations(rs).get(CHANGE_CAUSE)})
        for revs in by_deploy.values():
            revs.sort(key=lambda r: r["rev"])
        return by_deploy

    def _rollouts(self, revisions: dict[str, list[dict[str, Any]]], q: ChangeQuery) -> list[dict[str, Any]]:
        out = []
        for deploy, revs in revisions.items():
            svc = self._service(deploy)
            for i, r in enumerate(revs):
                if not q.holds(r["ts"]) or not q.wants(svc, "deploy"):
                    continue
                summary = f"rollout of deployment/{deploy} revision {r['rev']}: {r['version']}"
                if r["cause"]:
                    summary += f" ({r['cause']})"
                out.append({"id": f"k8s-{self.namespace}-{deploy}-{r['rev']}", "ts": iso(r["ts"]), "kind": "deploy",
                            "service": svc, "author": None, "summary": summary,
                            "details": {"version": r["version"],
                                        "previous_version": revs[i - 1]["version"] if i else None,
                                        "commit": None}})
        return out

    def _scaling(self, events: list[Any], revisions: dict[str, list[dict[str, Any]]],
                 q: ChangeQuery) -> list[dict[str, Any]]:
        out = []
        for ev in events:
            obj = ev.involved_object
            if obj is None or obj.kind != "Deployment" or not obj.name:
                continue
            svc = self._service(obj.name)
            m = _SCALED.match(ev.message or "")
            ts = _event_time(ev)
            if svc is None or m is None or ts is None or not q.holds(ts) or not q.wants(svc, "infra"):
                continue
            revs = revisions.get(obj.name, [])
            # A rollout scales the new ReplicaSet up and the old one down: not a change of its own.
            if any(ts - self.rollout_window_s <= r["ts"] <= ts + 60 for r in revs):
                continue
            if revs and m.group(2) != revs[-1]["rs"]:
                continue
            before = m.group(3) or m.group(5)
            action = f"scaled {before} -> {m.group(4)}" if before else f"scaled {m.group(1)} to {m.group(4)}"
            out.append({"id": f"k8s-{self.namespace}-{obj.name}-scale-{ev.metadata.name}",
                        "ts": iso(ts), "kind": "infra", "service": svc,
                        "author": getattr(ev.source, "component", None) if ev.source else None,
                        "summary": f"deployment/{obj.name} {action} replicas",
                        "details": {"resource": f"deployment/{obj.name}", "action": action}})
        return out


def _bearer_compat(cfg: Any) -> None:
    """Make a kubeconfig's or service account's bearer token reach the request.

    kubernetes 36.0.0's loaders store the token under ``api_key["authorization"]`` while its
    generated ``Configuration.auth_settings()`` only sends ``api_key["BearerToken"]``
    (kubernetes-client/python#2582, fixed in 36.0.1): without this every request goes anonymous
    and gets 401. Copy it across, and keep copying after the loader's refresh hook renews it.
    """
    token = cfg.api_key.get("authorization")
    if not token or "BearerToken" in cfg.api_key:
        return
    cfg.api_key["BearerToken"] = token
    hook = cfg.refresh_api_key_hook
    if hook is not None:
        def refresh(c: Any, _hook: Any = hook) -> None:
            _hook(c)
            if c.api_key.get("authorization"):
                c.api_key["BearerToken"] = c.api_key["authorization"]

        cfg.refresh_api_key_hook = refresh


def _annotations(obj: Any) -> dict[str, str]:
    return dict(getattr(obj.metadata, "annotations", None) or {})


def _version(containers: list[Any]) -> str | None:
    """The image tag of each container (``api:1.4.2``); one container gives just its tag."""
    tags = []
    for c in containers:
        image = c.image or ""
        if "@" in image:
            tag = image.split("@", 1)[1].split(":")[-1][:12]
        else:
            last = image.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else "latest"
        tags.append((c.name, tag))
    if not tags:
        return None
    if len(tags) == 1:
        return tags[0][1]
    return ",".join(f"{name}:{tag}" for name, tag in tags)


def _event_time(ev: Any, *, last: bool = False) -> float | None:
    """When an event happened: first seen (or, with ``last``, last seen for a repeated one)."""
    first = (ev.last_timestamp, ev.first_timestamp) if last else (ev.first_timestamp, ev.last_timestamp)
    for value in (*first, ev.event_time, ev.metadata.creation_timestamp):
        seconds = epoch(value)
        if seconds is not None:
            return seconds
    return None


def _scaled_up_times(events: list[Any]) -> dict[str, float]:
    """ReplicaSet name -> the last time the controller scaled it up from nothing (from the kept events);
    a later scale-up of a running ReplicaSet ("from 3 to 5") is scaling, not its activation."""
    out: dict[str, float] = {}
    for ev in events:
        m = _SCALED.match(ev.message or "")
        ts = _event_time(ev, last=True)
        before = (m.group(3) or m.group(5)) if m else None
        if m and m.group(1) == "up" and before in (None, "0") and ts is not None:
            out[m.group(2)] = max(out.get(m.group(2), ts), ts)
    return out
