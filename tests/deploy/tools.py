"""Helpers of the deploy tests: where the artefacts are, the promtool binary, docs/metrics.md as data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RULES = ALERTS / "rules.yaml"
DASHBOARD = ROOT / "dashboards" / "production-master.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
CHART = ROOT / "charts" / "production-master"

# scripts/ensure-helm.sh installs helm (bin/) and the Python checkers (python/) here, beside the virtualenv.
DEPLOY_TOOLS = Path(sys.prefix) / "deploy-tools"
MISSING_TOOLS = "run bash scripts/ensure-prometheus.sh (apt-get install prometheus) and bash scripts/ensure-helm.sh"


def tool(name: str) -> str:
    """The absolute path of a system tool; fails the test (never skips) when it is not installed."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        raise AssertionError(f"{name} is not installed; {MISSING_TOOLS}")
    return found


def checker(module: str) -> Any:
    """Import one of the Python deploy checkers; fails the test (never skips) when it is not installed."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AssertionError(f"{module} is not installed ({exc}); {MISSING_TOOLS}") from None


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the helm CLI that scripts/ensure-helm.sh installed (else one on PATH); output captured as text."""
    pinned = DEPLOY_TOOLS / "bin" / "helm"
    binary = str(pinned) if pinned.exists() else tool("helm")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=300)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args``; returns the finished process (output captured as text)."""
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@dataclass(frozen=True)
class Metric:
    """One row of docs/metrics.md's metric table."""

    name: str
    type: str
    labels: tuple[str, ...]
    buckets: tuple[str, ...]

    def series(self) -> set[str]:
        """The series names a query may use for this metric."""
        if self.type == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_count", f"{self.name}_sum"}
        return {self.name}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _section_rows(text: str, heading: str) -> list[list[str]]:
    """The table rows (header and separator left out) of the section under ``## heading``."""
    part = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    return [_cells(ln) for ln in lines[2:]]


def metric_catalogue() -> dict[str, Metric]:
    """docs/metrics.md's metrics by name (the table under "## Metrics")."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    out: dict[str, Metric] = {}
    for name, kind, labels, _by, meaning in _section_rows(text, "Metrics"):
        found = re.search(r"buckets `([^`]+)`", meaning)
        buckets = tuple(b.strip() for b in found.group(1).split(",")) if found else ()
        out[name.strip("`")] = Metric(
            name=name.strip("`"), type=kind, labels=tuple(re.findall(r"`([^`]+)`", labels)), buckets=buckets)
    return out


def label_values() -> dict[str, list[str]]:
    """docs/metrics.md's label values by label name (the table under "## Labels"); file names left out."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for label, values in _section_rows(text, "Labels"):
        tokens = [v for v in re.findall(r"`([^`]+)`", values) if not v.endswith(".py")]
        out[label.strip("`")] = list(dict.fromkeys(tokens))
    return out


def lost_fields(given: Any, kept: Any, path: str = "$") -> list[str]:
    """Paths of ``given`` that ``kept`` (a typed model's re-encoding of it) lost or changed.

    ``kept`` may add defaults; a field the model does not know is dropped by it, so it shows up here.
    """
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path]
        out: list[str] = []
        for key, value in given.items():
            out += [f"{path}.{key}"] if key not in kept else lost_fields(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list):
        if not isinstance(kept, list) or len(given) != len(kept):
            return [path]
        return [p for i, (a, b) in enumerate(zip(given, kept, strict=True)) for p in lost_fields(a, b, f"{path}[{i}]")]
    return [] if given == kept else [f"{path}: {given!r} became {kept!r}"]
