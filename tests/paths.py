"""Where the shared materials (../shared beside the checkout) are, for tests that read them in place."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("PM_SHARED_DIR")
    if env:
        return Path(env)
    beside = ROOT.parent / "shared"
    return beside if beside.exists() else Path("/work/shared")


SHARED = _shared()
WORLDS = SHARED / "worlds"
