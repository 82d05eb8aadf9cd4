"""Topology from a file: the world format's ``topology.yaml`` (``services: [{name, calls, tier?}]``).

What the file does not say is discovered elsewhere and merged by the gateway: client-side
metrics' peer labels (``topology: [{kind: prometheus, ...}]``) and callees named in logs
(read by the engine itself).
"""

from __future__ import annotations

from typing import Any

import yaml

from sources.base import Provider
from sources.errors import SourceError


class TopologyFileProvider(Provider):
    """``topology: [{kind: file, path: topology.yaml}]`` — the path is relative to sources.yaml."""

    KIND = "file"
    CAPABILITIES = ("topology.get",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.sources.resolve_path(self.opt_str("path", required=True, example="topology.yaml") or "")

    def topology_get(self) -> dict[str, Any]:
        try:
            doc = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise SourceError(f"topology file {self.path}: cannot read ({exc.strerror}); check {self.where}.path") from None
        except yaml.YAMLError as exc:
            raise SourceError(f"topology file {self.path}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        raw = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(raw, list):
            raise SourceError(f"topology file {self.path}: expected services: [{{name, calls: [...]}}, ...]")
        services = []
        for i, svc in enumerate(raw):
            if not isinstance(svc, dict) or not isinstance(svc.get("name"), str):
                raise SourceError(f"topology file {self.path}: services[{i}] needs a name")
            calls = svc.get("calls") or []
            if not isinstance(calls, list):
                raise SourceError(f"topology file {self.path}: services[{i}].calls must be a list of names")
            item: dict[str, Any] = {"name": svc["name"], "calls": [str(c) for c in calls]}
            if svc.get("tier"):
                item["tier"] = str(svc["tier"])
            services.append(item)
        return {"services": services}

    def check(self) -> str:
        return f"{len(self.topology_get()['services'])} services in {self.path.name}"
