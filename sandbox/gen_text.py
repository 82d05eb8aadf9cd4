"""Filling message templates with plausible random values.

A template is a ``str.format`` pattern from :mod:`sandbox.gen_vocab`. Only the
fields a template names are drawn, so the random stream (and so the world) is
the same however many fields other templates use.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from functools import lru_cache

from sandbox.gen_vocab import RESOURCES

_LOCALES = ("de-AT", "pt-BR", "fr-CA", "ja-JP", "es-MX", "nl-BE")


@lru_cache(maxsize=1024)
def _fields(template: str) -> tuple[str, ...]:
    """Return the field names a template uses, in order, without repeats."""
    seen: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name and name not in seen:
            seen.append(name)
    return tuple(seen)


def _draw(rng: random.Random, name: str) -> object:
    """Draw one value for the generic field ``name``.

    Raises:
        KeyError: the field is neither generic nor given in ``fixed``.
    """
    if name == "res":
        return rng.choice(RESOURCES)
    if name == "Res":
        return rng.choice(RESOURCES).title().replace("_", "")
    if name == "ms":
        return int(rng.lognormvariate(3.8, 0.6))
    if name == "ms_to":
        return rng.choice((1000, 1500, 2000, 2500, 3000, 5000, 10000, 30000))
    if name == "ms_slow":
        return rng.randint(900, 4800)
    if name == "n":
        return rng.randint(1, 5)
    if name == "n3":
        return rng.randint(10, 500)
    if name == "id":
        return rng.randint(1000, 99999)
    if name == "pct":
        return rng.randint(55, 95)
    if name == "status":
        return rng.choice((500, 502, 503, 503, 504))
    if name == "ip":
        return f"10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
    if name == "line":
        return rng.randint(40, 900)
    if name == "locale":
        return rng.choice(_LOCALES)
    raise KeyError(name)


def fill(rng: random.Random, template: str, fixed: Mapping[str, object]) -> str:
    """Render ``template`` with ``fixed`` values and random values for the rest.

    Params:
        rng: the world's random stream.
        template: a ``str.format`` pattern.
        fixed: values that must not be random (``svc``, ``callee``, ``port``, ``peer``, ``flag`` ...).

    Raises:
        KeyError: the template names a field that is neither fixed nor generic (a vocabulary bug).

    Returns:
        The message text.
    """
    values = {name: fixed[name] if name in fixed else _draw(rng, name) for name in _fields(template)}
    return template.format(**values)
