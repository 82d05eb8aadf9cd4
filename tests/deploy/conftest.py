"""Puts the Python deploy checkers (scripts/ensure-helm.sh installs them beside the virtualenv, in
.venv/deploy-tools/python) on sys.path for these tests only: after pytest has loaded its plugins, so the
pytest plugin that cloudcoil declares is never loaded in any run."""

from __future__ import annotations

import sys

from tests.deploy.tools import DEPLOY_TOOLS

if (DEPLOY_TOOLS / "python").is_dir() and str(DEPLOY_TOOLS / "python") not in sys.path:
    sys.path.append(str(DEPLOY_TOOLS / "python"))
