"""Metrics-first variants of incident worlds, for the benches (never read by the engine).

Real teams often have good metrics, sampled traces and thin or missing logs. ``derive`` writes a variant
of a world next to the original (in a scratch folder; the source world is read in place, never changed):

* ``no_logs``: logs.jsonl left out (the world format allows a missing optional file), so trace-joined log
  lines go too;
* ``no_topology``: topology.yaml left out (optional in the world format: a team may have no service map), so
  the engine sees no call edges;
* ``thin``: keep this share (0..1] of the samples of request-level series (``requests_per_s``,
  ``error_rate``, latency and caller latency: what traces or a mesh measure), chosen per (service, ts) by a
  stable hash so every run drops the same samples and a service's request-level series vanish together for
  a step (no sampled span of it then); with logs kept, lines of traces whose id hashes out go as well
  (1-in-N trace sampling).

Every other file is linked, not copied.

Usage: .venv/bin/python bench/variants.py [--no-logs] [--thin-traces 0.3] [--no-topology] --out DIR WORLD... (prints each variant)
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

REQUEST_SERIES = ("requests_per_s", "error_rate", "latency_p95_ms", "caller_latency_p95_ms", "latency_p99_ms",
                  "latency_p50_ms", "http_5xx_per_s")


def _keep(key: str, share: float) -> bool:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def derive(world: Path, out_root: Path, *, no_logs: bool = False, thin: float = 1.0,
           no_topology: bool = False) -> Path:
    """Write the variant of ``world`` under ``out_root`` (reused when already there); returns its folder."""
    tag = (("nologs" if no_logs else "logs") + (f"-thinsvc{thin:g}" if thin < 1.0 else "")
           + ("-notopo" if no_topology else ""))
    out = out_root / tag / world.name
    if (out / ".variant").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for item in world.iterdir():
        target = out / item.name
        if target.exists() or target.is_symlink():
            target.unlink()
        if item.name == "topology.yaml" and no_topology:
            continue
        if item.name == "logs.jsonl" and (no_logs or thin < 1.0):
            if no_logs:
                continue
            with item.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as dst:
                for raw in src:
                    trace = json.loads(raw).get("trace_id")
                    if trace is None or _keep(f"trace/{trace}", thin):
                        dst.write(raw)
            continue
        if item.name == "metrics.jsonl" and thin < 1.0:
            with item.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as dst:
                for raw in src:
                    rec = json.loads(raw)
                    if rec.get("name") not in REQUEST_SERIES or \
                            _keep(f"{rec.get('service')}/{rec.get('ts')}", thin):
                        dst.write(raw)
            continue
        target.symlink_to(item.resolve())
    (out / ".variant").write_text(f"{world}\nno_logs={no_logs} thin={thin} no_topology={no_topology}\n")
    return out


def derive_all(worlds: list[Path], out_root: Path, *, no_logs: bool = False, thin: float = 1.0,
               no_topology: bool = False) -> list[Path]:
    """``derive`` each world; the originals when no variant is asked for."""
    if not no_logs and thin >= 1.0 and not no_topology:
        return worlds
    return [derive(w, out_root, no_logs=no_logs, thin=thin, no_topology=no_topology) for w in worlds]


def main(argv: list[str] | None = None) -> None:
    """Write the asked variant of each world given and print its folder."""
    parser = argparse.ArgumentParser(description="Write metrics-first variants of incident worlds.")
    parser.add_argument("worlds", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path, help="folder the variants are written under")
    parser.add_argument("--no-logs", action="store_true", help="leave every world's logs out")
    parser.add_argument("--thin-traces", type=float, default=1.0, help="keep this share of request-level samples")
    parser.add_argument("--no-topology", action="store_true", help="leave every world's topology.yaml out")
    args = parser.parse_args(argv)
    if not 0 < args.thin_traces <= 1:
        parser.error("--thin-traces must be in (0, 1]")
    missing = [str(w) for w in args.worlds if not w.is_dir()]
    if missing:
        parser.error(f"not a world folder: {', '.join(missing)} (give folders holding world.yaml)")
    for world in derive_all(args.worlds, args.out, no_logs=args.no_logs, thin=args.thin_traces,
                            no_topology=args.no_topology):
        print(world)


if __name__ == "__main__":
    main()
