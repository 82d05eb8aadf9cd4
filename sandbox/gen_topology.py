"""Random service topologies: tiers, names and who calls whom.

Services are ordered frontend → core → backend → datastore and a service only
calls services later in that order, so the call graph is always acyclic.
Shapes vary the graph so worlds hold chains, fan-in hubs, fan-out entry points
and plain layered meshes.
"""

from __future__ import annotations

import random

from sandbox.gen_model import Service
from sandbox.gen_vocab import APP_POOLS, DATASTORES, FRONTEND_NAMES

SHAPES = ("layered", "chain", "fan_in", "fan_out")


def _pick_names(rng: random.Random, n_front: int, n_app: int) -> list[str]:
    """Draw ``n_front + n_app`` distinct app names, mostly from one business domain."""
    home = rng.choice(sorted(APP_POOLS))
    pool = list(APP_POOLS[home])
    rng.shuffle(pool)
    others = [n for d in sorted(APP_POOLS) if d != home for n in APP_POOLS[d]]
    rng.shuffle(others)
    fronts = list(FRONTEND_NAMES)
    rng.shuffle(fronts)
    names: list[str] = []
    for _ in range(n_front):
        # Examples name frontends after business services too ("orders", "booking").
        names.append(fronts.pop() if fronts and rng.random() < 0.5 else (pool.pop() if pool else others.pop()))
    supply = pool + others
    while len(names) < n_front + n_app:
        name = supply.pop(0) if supply else f"svc-{len(names):02d}"
        if name not in names:
            names.append(name)
    return names


def build_topology(rng: random.Random, n: int, shape: str) -> list[Service]:
    """Build ``n`` services (apps and datastores) wired in the given shape.

    Params:
        rng: the world's random stream.
        n: total number of services, datastores included (at least 4).
        shape: one of :data:`SHAPES`.

    Returns:
        The services in tier order, each with its sorted ``calls``.
    """
    n_ds = max(1, min(len(DATASTORES), round(n * rng.uniform(0.15, 0.3))))
    n_app = n - n_ds
    n_front = max(1, round(n_app * rng.uniform(0.15, 0.3)))
    n_core = max(1, round(n_app * rng.uniform(0.15, 0.3))) if n_app - n_front >= 2 else 0
    n_back = n_app - n_front - n_core
    names = _pick_names(rng, n_front, n_app - n_front)
    stores = rng.sample(DATASTORES, n_ds)
    services = [Service(name, "frontend") for name in names[:n_front]]
    services += [Service(name, "core") for name in names[n_front:n_front + n_core]]
    services += [Service(name, "backend") for name in names[n_front + n_core:n_front + n_core + n_back]]
    services += [Service(name, "datastore", store=kind, port=port) for name, port, kind in stores]
    _wire(rng, services, shape)
    return services


def _wire(rng: random.Random, services: list[Service], shape: str) -> None:
    """Add ``calls`` edges (only towards later services) according to ``shape``."""
    apps = [s for s in services if s.store is None]
    stores = [s for s in services if s.store is not None]
    index = {s.name: i for i, s in enumerate(services)}
    edges: set[tuple[str, str]] = set()

    def later(svc: Service, pool: list[Service]) -> list[Service]:
        return [t for t in pool if index[t.name] > index[svc.name]]

    for svc in apps:
        if svc.tier == "frontend":
            targets, k = later(svc, [a for a in apps if a.tier in ("core", "backend")]), rng.randint(1, 3)
        elif svc.tier == "core":
            targets, k = later(svc, [a for a in apps if a.tier == "backend"]) + stores, rng.randint(1, 3)
        else:
            targets, k = later(svc, apps) + stores * 2, rng.choice((0, 1, 1, 2))
        for t in rng.sample(targets, min(k, len(targets))):
            edges.add((svc.name, t.name))
    if shape == "chain" and len(apps) >= 3:
        chain = [apps[0]] + sorted(rng.sample(apps[1:], min(len(apps) - 1, rng.randint(2, 4))),
                                   key=lambda s: index[s.name])
        chain.append(rng.choice(stores))
        edges.update((a.name, b.name) for a, b in zip(chain, chain[1:], strict=False))
    elif shape == "fan_in":
        hub = rng.choice([s for s in services if s.tier in ("backend", "datastore")] or services[1:])
        callers = [a for a in apps if index[a.name] < index[hub.name]]
        edges.update((c.name, hub.name) for c in rng.sample(callers, min(len(callers), rng.randint(3, 5))))
    elif shape == "fan_out":
        root = apps[0]
        fan = later(root, [a for a in apps if a.tier != "frontend"])
        edges.update((root.name, t.name) for t in rng.sample(fan, min(len(fan), rng.randint(3, 6))))
    # Most non-frontend services have a caller; a rare orphan is kept (example-2's mysql-legacy).
    for svc in services:
        if svc.tier == "frontend" or any(b == svc.name for _, b in edges) or rng.random() < 0.08:
            continue
        callers = [a for a in apps if index[a.name] < index[svc.name]]
        if callers:
            edges.add((rng.choice(callers).name, svc.name))
    for svc in services:
        callees = sorted((b for a, b in edges if a == svc.name), key=lambda name: (services[index[name]].store is not None, name))
        svc.calls = callees


def callers_of(services: list[Service], name: str) -> list[str]:
    """Return the names of the services that call ``name``, in topology order."""
    return [s.name for s in services if name in s.calls]
