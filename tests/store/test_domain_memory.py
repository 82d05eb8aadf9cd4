"""Domain memory (issue #17, item 4): notes per domain in the database, edited with `pm domains memory` and the
admin API (role checks), given to investigations of the domain (agents' context) and shown in the report's
"Context" section in every medium, escaped there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from commands.investigate import start
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from sandbox.tools import WorldTools
from store import domains
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation
from tests.bot.test_api import Api, _problem

ROOT = Path(__file__).resolve().parents[2]
NOTES = "payments' p95 is always high on Mondays (batch settlement).\nOwner: @team-pay <!channel> <script>x</script>"


def test_store_notes_replace_clear_and_refuse_what_is_too_long(tmp_path, sqlite_url):
    upgrade(sqlite_url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url))
    try:
        with runtime.session() as s:
            assert domains.get_memory(session=s, domain="payments")["text"] == ""
            assert domains.memory_text(session=s, domain="payments") is None
            got = domains.set_memory(session=s, domain="payments", text=NOTES + "\r\n", user="alice")
            assert got["text"] == NOTES and got["updated_by"] == "alice" and got["updated_at"]
        assert runtime.domain_notes("payments") == NOTES and runtime.domain_notes(None) is None
        with runtime.session() as s:
            with pytest.raises(ValueError, match="under 32000"):
                domains.set_memory(session=s, domain="payments", text="x" * 40_000)
            with pytest.raises(ValueError, match="needs a name"):
                domains.set_memory(session=s, domain=" ", text="x")
            domains.set_memory(session=s, domain="payments", text="")
            assert domains.memory_text(session=s, domain="payments") is None
    finally:
        runtime.close()


def _pm(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "EDITOR", "VISUAL"))}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=home, input=stdin, capture_output=True,
                          text=True, timeout=120, env={**base, "PYTHONPATH": str(ROOT), "PM_HOME": str(home),
                                                       **(env or {})})


def test_cli_shows_and_edits_from_a_file_stdin_or_the_editor_in_an_empty_directory(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text(NOTES)
    out = _pm(tmp_path, "domains", "memory", "show", "payments")
    assert out.returncode == 0 and "no notes for domain 'payments'" in out.stderr
    out = _pm(tmp_path, "domains", "memory", "edit", "payments", "--set-file", str(notes))
    assert out.returncode == 0 and "saved" in out.stderr, out.stderr
    out = _pm(tmp_path, "domains", "memory", "show", "payments")
    assert out.stdout.strip() == NOTES
    out = _pm(tmp_path, "domains", "memory", "edit", "Bookings/Server/scheduler", stdin="noisy: disk alerts\n")
    assert out.returncode == 0 and _pm(tmp_path, "domains", "memory", "show",
                                       "Bookings/Server/scheduler").stdout.strip() == "noisy: disk alerts"
    out = _pm(tmp_path, "domains", "memory", "edit", "payments", "--set-file", str(tmp_path / "missing.md"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "cannot read" in out.stderr
    big = tmp_path / "big.md"
    big.write_text("x" * 40_000)
    out = _pm(tmp_path, "domains", "memory", "edit", "payments", "--set-file", str(big))
    assert out.returncode == 1 and "keep them under 32000" in out.stderr and out.stderr.count("\n") == 1


def test_editor_path(tmp_path, monkeypatch, capsys):
    """The $EDITOR path itself (stdin a terminal), through the CLI's own function."""
    from bot import cli_domains

    upgrade_url = f"sqlite:///{tmp_path}/pm.db"
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=upgrade_url)
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "owner: @team-pay\\n" >> "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("EDITOR", str(editor))
    args = cli_domains.argparse.Namespace(domain="payments", set_file=None, user="alice")
    assert cli_domains.run_edit(args, settings) == 0
    assert cli_domains.run_edit(args, settings) == 0  # appends again
    cli_domains.run_show(cli_domains.argparse.Namespace(domain="payments"), settings)
    assert capsys.readouterr().out.strip() == "owner: @team-pay\nowner: @team-pay"
    monkeypatch.delenv("EDITOR")
    monkeypatch.delenv("VISUAL", raising=False)
    from commands.errors import CommandError

    with pytest.raises(CommandError, match="set EDITOR"):
        cli_domains.run_edit(args, settings)


def test_admin_api_reads_for_viewers_and_writes_for_admins(tmp_path, sqlite_url):
    api = Api(tmp_path, sqlite_url)
    try:
        url = "/api/v1/domains/Bookings/Server/scheduler/memory"
        got = api.client.get(url, headers=api.as_("viewer")).json()
        assert got == {"domain": "Bookings/Server/scheduler", "text": "", "updated_by": None, "updated_at": None}
        _problem(api.client.put(url, headers=api.as_("operator"), json={"text": "x"}), 403)
        _problem(api.client.put(url, headers=api.as_("admin"), json={"notes": "x"}), 400)
        _problem(api.client.put(url, headers=api.as_("admin"), json={"text": "x" * 40_000}), 400)
        put = api.client.put(url, headers=api.as_("admin"), json={"text": NOTES})
        assert put.status_code == 200 and put.json()["text"] == NOTES
        got = api.client.get(url, headers=api.as_("viewer")).json()
        assert got["text"] == NOTES and got["updated_by"] and got["updated_at"]
        spec = api.client.get("/openapi.json").json()["paths"]["/api/v1/domains/{repo}/memory"]
        assert set(spec) == {"get", "put"}
    finally:
        api.close()


def test_an_investigation_of_the_domain_gets_the_notes_in_its_context_and_report(tmp_path, sqlite_url):
    from publishers import html, markdown, slack

    upgrade(sqlite_url)
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url)
    runtime = build_runtime(settings, tools_factory=lambda inv: WorldTools(Path(inv["sources"]["world"])))
    try:
        with runtime.session() as s:
            domains.set_memory(session=s, domain="music", text=NOTES)
        started = start(runtime=runtime, request=InvestigationRequest(
            trigger={"text": "investigate"}, origin=Origin(kind="cli"), domain="music",
            sources={"world": str(ROOT / "examples" / "worlds" / "demo-deploy")}))
        assert runtime.machine.advance(started.investigation_id) == "COMPLETE"
        with runtime.session() as s:
            inv = s.get(Investigation, started.investigation_id)
            report = dict(inv.report)
        assert report["context"] == {"domain": "music", "domain_memory": NOTES}
    finally:
        runtime.close()
    md = markdown.render_report(report)
    assert "## Context" in md and "> payments' p95 is always high on Mondays (batch settlement)." in md
    page = html.render_report_page({"id": "inv-1", "status": "COMPLETE", "report": report}, {}, {})
    assert "id=domain-notes" in page and "<script>x</script>" not in page and "&lt;script&gt;" in page
    _, blocks = slack.report_blocks({"id": "inv-1", "status": "COMPLETE"}, report)
    notes = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"] if "Domain notes" in e["text"]]
    assert len(notes) == 1 and "<!channel>" not in notes[0] and "batch settlement" in notes[0]
