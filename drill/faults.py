"""The drill's faults: what each one does to the running shop and what the right answer is.

Each fault has ``decoys`` (harmless changes made during the warm-up, ``seconds before the fault``)
and ``inject`` (the fault itself, returning the id of the change that caused it, or None when no
change of ours did). Every change of ours is posted to ``/webhooks/change`` as CI, the flag service
or the config tool would; the outside provider's trouble and a traffic surge are not changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from drill.shop.service import BAD_VERSIONS
from drill.stack import Stack

Inject = Callable[[Stack], "str | None"]


@dataclass(frozen=True)
class Decoy:
    """A harmless change made ``before_s`` seconds before the fault."""

    before_s: float
    apply: Callable[[Stack], str]


@dataclass(frozen=True)
class Fault:
    """One fault: its name, the truth (culprit service, and whether a change of ours caused it), how to inject it."""

    name: str
    summary: str
    service: str
    inject: Inject
    decoys: tuple[Decoy, ...] = field(default_factory=tuple)


def _deploy(stack: Stack, service: str, version: str, summary: str) -> str:
    previous = stack.versions[service]
    stack.deploy(service, version)
    return stack.post_change("deploy", service, summary, {"from": previous, "to": version, "version": version})


def bad_deploy(stack: Stack) -> str:
    return _deploy(stack, "payments", BAD_VERSIONS["payments"], f"Deploy payments {BAD_VERSIONS['payments']}")


def flag_flip(stack: Stack) -> str:
    flags = stack.read_json("flags.json")
    flags.setdefault("checkout", {})["new_pricing"] = True
    stack.write_json("flags.json", flags)
    return stack.post_change("feature_flag", "checkout", "new_pricing on for 100%",
                             {"flag": "new_pricing", "from": False, "to": True, "rollout_pct": 100}, author="flags")


def config_change(stack: Stack) -> str:
    config = stack.read_json("config/inventory.json")
    before = config["pool_size"]
    config["pool_size"] = 1
    stack.write_json("config/inventory.json", config)
    return stack.post_change("config", "inventory", "inventory db.pool_size 3 -> 1 (free connections for reports)",
                             {"key": "db.pool_size", "from": before, "to": 1}, author="config-bot")


def third_party(stack: Stack) -> None:
    # The payment provider has a bad day: half its charges fail. Nothing of ours changed.
    stack.write_json("thirdparty.json", {"fail_rate": 0.5, "extra_ms": 0})
    return None


def capacity(stack: Stack) -> None:
    # A traffic surge (a campaign went out): four times the customers; inventory's pool runs dry.
    load = stack.read_json("load.json")
    load["rps"] = float(load["rps"]) * 4
    stack.write_json("load.json", load)
    return None


def decoy_fault(stack: Stack) -> str:
    return _deploy(stack, "inventory", BAD_VERSIONS["inventory"], f"Deploy inventory {BAD_VERSIONS['inventory']}")


def _decoy_deploy(service: str, version: str) -> Callable[[Stack], str]:
    return lambda stack: _deploy(stack, service, version, f"Deploy {service} {version}")


def _decoy_config(stack: Stack) -> str:
    config = stack.read_json("config/payments.json")
    config["retries"] = 1
    stack.write_json("config/payments.json", config)
    return stack.post_change("config", "payments", "payments retries 0 -> 1", {"key": "retries", "from": 0, "to": 1},
                             author="config-bot")


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("bad-deploy", "payments 2.4.1 raises KeyError on charges over 30 EUR", "payments", bad_deploy),
    Fault("flag-flip", "checkout's new_pricing flag on: orders with a coupon raise KeyError", "checkout", flag_flip),
    Fault("config-change", "inventory's db pool 3 -> 1: requests wait and time out", "inventory", config_change),
    Fault("third-party", "paygate (the payment provider) fails half the charges; no change of ours", "paygate",
          third_party),
    Fault("capacity", "4x traffic surge; inventory's pool is exhausted; no change of ours", "inventory", capacity),
    Fault("decoys", "frontend, checkout and payments change harmlessly, then inventory 3.1.0 breaks reserves",
          "inventory", decoy_fault,
          decoys=(Decoy(45, _decoy_deploy("frontend", "3.2.1")), Decoy(30, _decoy_config),
                  Decoy(15, _decoy_deploy("checkout", "1.7.5")))),
)}
