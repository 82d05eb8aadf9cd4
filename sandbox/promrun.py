"""A real Prometheus on loopback, holding recorded samples (replay, tests, the parity bench).

``write_openmetrics`` writes samples as an OpenMetrics file; ``build_blocks`` turns it into TSDB
blocks with Debian's ``promtool tsdb create-blocks-from openmetrics``; :class:`PrometheusProcess`
runs ``prometheus`` on those blocks (a temp data dir, a free loopback port, a retention long
enough that old samples stay queryable) and stops it on exit.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from sandbox.errors import SandboxError

Sample = tuple[str, dict[str, str], float, float]
"""(metric name, labels, epoch seconds, value)."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def write_openmetrics(samples: Iterable[Sample], path: str | Path) -> int:
    """Write ``samples`` as OpenMetrics text (gauges, one family at a time, each series in time order).

    Returns:
        The number of samples written (non-finite values are left out).
    """
    families: dict[str, dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list))
    for name, labels, ts, value in samples:
        if not isinstance(value, int | float) or not math.isfinite(value):
            continue
        families[name][tuple(sorted(labels.items()))].append((ts, float(value)))
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for name in sorted(families):
            out.write(f"# TYPE {name} gauge\n")
            for label_pairs, points in sorted(families[name].items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in label_pairs)
                head = f"{name}{{{label_text}}}" if label_text else name
                for ts, value in sorted(points):
                    out.write(f"{head} {value!r} {ts:.3f}\n")
                    count += 1
        out.write("# EOF\n")
    return count


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        raise SandboxError(f"{name} is not installed; run bash scripts/ensure-prometheus.sh (apt-get install prometheus)")
    return found


def build_blocks(openmetrics: str | Path, data_dir: str | Path) -> None:
    """Create TSDB blocks in ``data_dir`` from an OpenMetrics file (``promtool``).

    Raises:
        SandboxError: promtool is missing or refused the file (its message quoted).
    """
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    done = subprocess.run([_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                           str(openmetrics), str(data_dir)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SandboxError(f"promtool could not build blocks from {openmetrics}: {tail[0]}")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusProcess:
    """Run ``prometheus`` on ``data_dir`` (blocks built beforehand) until closed.

    Args:
        data_dir: the TSDB directory (a temp one when None).
        port: the loopback port (a free one when None).
        config: extra prometheus.yml text (scrape configs, rule files); empty by default.
        args: extra command-line flags.

    Attributes:
        url: ``http://127.0.0.1:<port>`` once started.

    Raises:
        SandboxError: prometheus is missing or did not become ready within ``ready_timeout_s``.
    """

    def __init__(self, data_dir: str | Path | None = None, *, port: int | None = None, config: str = "",
                 args: list[str] | None = None, ready_timeout_s: float = 60.0) -> None:
        self._tmp = tempfile.mkdtemp(prefix="pm-prom-")
        self.data_dir = Path(data_dir) if data_dir else Path(self._tmp) / "data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config or "global:\n  scrape_interval: 15s\n"
        self.args = list(args or [])
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self._tmp) / "prometheus.log"

    def start(self) -> PrometheusProcess:
        cfg = Path(self._tmp) / "prometheus.yml"
        cfg.write_text(self.config, encoding="utf-8")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [_tool("prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={self.data_dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
             "--web.enable-lifecycle", "--log.level=warn", *self.args],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SandboxError(f"prometheus exited at start: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SandboxError(f"prometheus did not become ready in {self.ready_timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PrometheusProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def prometheus_with(samples: Iterable[Sample], **kwargs: Any) -> PrometheusProcess:
    """A (not yet started) Prometheus whose TSDB holds ``samples``; use as a context manager."""
    proc = PrometheusProcess(**kwargs)
    om = Path(proc._tmp) / "samples.om"
    write_openmetrics(samples, om)
    build_blocks(om, proc.data_dir)
    return proc
