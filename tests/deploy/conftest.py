"""Puts the offline deploy checkers (scripts/ensure-helm.sh installs them beside the virtualenv, in
.venv/deploy-tools) on sys.path for these tests only: after pytest has loaded its plugins, so the
pytest plugin that cloudcoil declares is never loaded in any run."""

from __future__ import annotations

import sys
from pathlib import Path

DEPLOY_TOOLS = Path(sys.prefix) / "deploy-tools"
if DEPLOY_TOOLS.is_dir() and str(DEPLOY_TOOLS) not in sys.path:
    sys.path.append(str(DEPLOY_TOOLS))
