"""The Dockerfile, checked statically (no Docker daemon here): multi-stage, pinned install, non-root, no secrets."""

from __future__ import annotations

import fnmatch
import re
import shlex

from tests.deploy.tools import ROOT

DOCKERFILE = ROOT / "Dockerfile"
SECRET_NAMES = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|ACCESS_KEY|DATABASE_URL|REDIS_URL)", re.IGNORECASE)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for word, rest in _instructions(text):
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest))
    return stages


def _check(text: str) -> list[str]:
    """What is wrong with a Dockerfile's text, by the rules of this project (empty when nothing)."""
    problems = []
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    stages = _stages(text)
    if len(stages) < 2:
        problems.append("not multi-stage")
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)
        if base != "python:3.11-slim":
            problems.append(f"base image {base}, not python:3.11-slim")
    final = stages[-1] if stages else []
    users = [rest for word, rest in final if word == "USER"]
    if not users:
        problems.append("the final stage sets no USER (it would run as root)")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage runs as {users[-1]}")
    installs = [rest for stage in stages for word, rest in stage if word == "RUN" and "pip install" in rest]
    if not any("-c requirements.lock" in rest for rest in installs):
        problems.append("no `pip install -c requirements.lock .`")
    entry = [rest for word, rest in final if word == "ENTRYPOINT"]
    if not entry or entry[-1] != '["pm"]':
        problems.append(f"entrypoint is {entry[-1] if entry else None}, not [\"pm\"]")
    for word, rest in _instructions(text):
        if word in ("ENV", "ARG", "LABEL"):
            names = [part.split("=")[0] for part in shlex.split(rest)]
            leaked = [n for n in names if SECRET_NAMES.search(n)]
            if leaked:
                problems.append(f"{word} {leaked}: secrets belong in the environment at run time")
        if word in ("COPY", "ADD") and re.search(r"\.env\b|\.pem\b|id_rsa|\.kube", rest):
            problems.append(f"{word} {rest}: copies a secret file")
    return problems


def test_the_dockerfile_is_multi_stage_pinned_non_root_and_carries_no_secrets() -> None:
    assert _check(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_the_check_catches_a_root_image_a_secret_and_an_unpinned_install() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "the final stage sets no USER" in " ".join(_check(re.sub(r"^USER .*$", "", text, flags=re.MULTILINE)))
    assert any("runs as root" in p for p in _check(text.replace("USER 10001:10001", "USER root")))
    assert any("secrets belong" in p for p in _check(text + "\nENV ANTHROPIC_API_KEY=sk-ant-x\n"))
    assert any("requirements.lock" in p for p in _check(text.replace("-c requirements.lock ", "")))
    assert any("not multi-stage" in p for p in _check("FROM python:3.11-slim\nUSER 1\nENTRYPOINT [\"pm\"]\n"))


def test_the_image_user_is_the_charts_run_as_user_and_what_the_build_copies_is_in_the_context() -> None:
    import yaml

    text = DOCKERFILE.read_text(encoding="utf-8")
    values = yaml.safe_load((ROOT / "charts" / "production-master" / "values.yaml").read_text(encoding="utf-8"))
    assert f"USER {values['podSecurityContext']['runAsUser']}:" in text
    assert "--uid 10001" in text
    # .dockerignore excludes everything but what COPY names: each source must be let back in.
    rules = [ln.strip() for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    for word, rest in _instructions(text):
        if word != "COPY" or rest.startswith("--from"):
            continue
        for source in shlex.split(rest)[:-1]:
            included = False
            for rule in rules:
                negated = rule.startswith("!")
                pattern = rule.lstrip("!").rstrip("/")
                if pattern == "**" or fnmatch.fnmatch(source.rstrip("/"), pattern):
                    included = negated
            assert included, f"COPY {source} is excluded by .dockerignore"
            assert (ROOT / source).exists(), source
