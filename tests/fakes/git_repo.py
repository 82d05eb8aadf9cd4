"""A real git repository in a temporary folder whose commits and tags carry the dates a test chooses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class Repo:
    """A git repository whose commits and tags carry the dates we choose."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, date: str = "2026-01-01T00:00:00Z", who: str = "alice") -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who}@example.com",
               "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": f"{who}@example.com",
               "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_CONFIG_GLOBAL": "/dev/null"}
        return subprocess.run(["git", "-C", str(self.path), *args], env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, files: dict[str, str], message: str, date: str, who: str = "alice") -> str:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, date=date, who=who)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, date: str, message: str | None = None, who: str = "rel-bot") -> None:
        if message:
            self.git("tag", "-a", name, "-m", message, date=date, who=who)
        else:
            self.git("tag", name, date=date)
