"""The Dockerfile, docker-compose.yml and .env.example agree with the settings (no Docker engine
here, so their assumptions are read as text): the health check follows METRICS_PORT, the volume is
the database's folder whichever DATABASE_URL applies, the exposed ports are the settings' defaults,
dependencies install before the source is copied, and Docker waits longer than SHUTDOWN_GRACE_S."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from aiohttp import web

from bot.cli import flat_settings
from bot.preflight import database_path
from bot.settings import Settings
from core.engine import SUSPEND_GRACE_S
from core.inflight import FINAL_WRITES_S
from tests.cli import REPO
from tests.fakes.local_app import serving

SOURCE_PACKAGES = ("bot", "adapters", "core")


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def parse_yaml_subset(text: str) -> dict[str, object]:
    """Enough YAML for docker-compose.yml: nested mappings, lists of scalars, quoted scalars."""
    root: dict[str, object] = {}
    stack: list[tuple[int, dict[str, object] | list[object]]] = [(-1, root)]
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for number, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        content = re.sub(r"\s+#.*$", "", line.strip())
        while stack[-1][0] >= indent:
            stack.pop()
        container = stack[-1][1]
        if content.startswith("- "):
            assert isinstance(container, list), line
            container.append(_scalar(content[2:]))
            continue
        key, _, value = content.partition(":")
        assert isinstance(container, dict), line
        if value.strip():
            container[key.strip()] = _scalar(value)
            continue
        following = lines[number + 1] if number + 1 < len(lines) else ""
        deeper = len(following) - len(following.lstrip()) > indent
        child: dict[str, object] | list[object] = [] if deeper and following.strip().startswith("- ") else {}
        container[key.strip()] = child
        stack.append((indent, child))
    return root


def _scalar(text: str) -> str:
    return text.strip().strip('"').strip("'")


def env_file_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert match and duration, duration
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def docker_problems(
    *, dockerfile: str, compose: str, env_example: str, dockerignore: str, defaults: Mapping[str, object]
) -> list[str]:
    """Every way the container files disagree with the settings' defaults; empty when they agree."""
    problems: list[str] = []
    instructions = dockerfile_instructions(dockerfile)
    by_keyword: dict[str, list[str]] = {}
    for instruction in instructions:
        by_keyword.setdefault(instruction.keyword, []).append(instruction.arguments)
    metrics_port, slack_port = defaults["METRICS_PORT"], defaults["SLACK_PORT"]

    # The health check asks the port the bot listens on.
    [healthcheck] = by_keyword.get("HEALTHCHECK", [""])
    fallback = re.search(r"METRICS_PORT['\"]?\s*,\s*['\"](\d+)['\"]", healthcheck)
    if not fallback:
        problems.append("HEALTHCHECK does not read its port from METRICS_PORT")
    elif int(fallback.group(1)) != metrics_port:
        problems.append(
            f"HEALTHCHECK falls back to port {fallback.group(1)}, METRICS_PORT defaults to {metrics_port}"
        )

    # One volume, and it is the database's folder whichever DATABASE_URL applies.
    workdir = PurePosixPath(by_keyword.get("WORKDIR", ["/"])[-1])
    volumes = [
        json_or_word for arguments in by_keyword.get("VOLUME", []) for json_or_word in _words(arguments)
    ]
    if len(volumes) != 1:
        problems.append(f"expected one VOLUME, found {volumes}")
        return problems
    volume = PurePosixPath(volumes[0])
    image_env = {
        key: value for arguments in by_keyword.get("ENV", []) for key, value in _env_assignments(arguments)
    }
    service = _service(parse_yaml_subset(compose))
    compose_env = service.get("environment", {})
    assert isinstance(compose_env, dict)
    sources = {
        "the settings' default": str(defaults["DATABASE_URL"]),
        "the image's ENV": image_env.get("DATABASE_URL", str(defaults["DATABASE_URL"])),
        ".env.example": env_file_values(env_example).get("DATABASE_URL", str(defaults["DATABASE_URL"])),
        "docker-compose.yml": str(compose_env.get("DATABASE_URL", image_env.get("DATABASE_URL", ""))),
    }
    for source, url in sources.items():
        path = database_path(url)
        if path is None:
            problems.append(f"{source}: DATABASE_URL {url} is in memory")
            continue
        resolved = PurePosixPath(path) if path.is_absolute() else workdir / PurePosixPath(path)
        if resolved.parent != volume:
            problems.append(
                f"{source}: DATABASE_URL {url} is {resolved} in the container, not on VOLUME {volume}"
            )

    # The runtime user owns the volume's folder (a fresh named volume copies its ownership).
    users = by_keyword.get("USER", [])
    user = users[-1] if users else "root"
    user_index = next(
        (i for i, instruction in enumerate(instructions) if instruction.keyword == "USER"), len(instructions)
    )
    if not any(
        instruction.keyword == "RUN"
        and f"chown {user}" in instruction.arguments
        and str(volume) in instruction.arguments
        for instruction in instructions[:user_index]
    ):
        problems.append(f"no RUN before USER makes {volume} owned by {user}")

    # Ports: Slack HTTP mode and the ops endpoint, at their defaults.
    exposed = {
        int(port.split("/")[0]) for arguments in by_keyword.get("EXPOSE", []) for port in arguments.split()
    }
    if exposed != {slack_port, metrics_port}:
        problems.append(
            f"EXPOSE {sorted(exposed)} is not SLACK_PORT {slack_port} and METRICS_PORT {metrics_port}"
        )

    # Dependencies in a layer of their own, before any source is copied.
    first_source = next(
        (
            i
            for i, instruction in enumerate(instructions)
            if instruction.keyword == "COPY"
            and any(_copies(instruction.arguments, package) for package in SOURCE_PACKAGES)
        ),
        None,
    )
    first_install = next(
        (
            i
            for i, instruction in enumerate(instructions)
            if instruction.keyword == "RUN" and "pip install" in instruction.arguments
        ),
        None,
    )
    if first_source is None or first_install is None or first_install > first_source:
        problems.append("dependencies are not installed in a layer before the source is copied")
    elif not any(
        "pyproject.toml" in instruction.arguments
        for instruction in instructions[:first_install]
        if instruction.keyword == "COPY"
    ):
        problems.append("the dependency layer does not start from pyproject.toml")

    if by_keyword.get("STOPSIGNAL", ["SIGTERM"])[-1] != "SIGTERM":
        problems.append("STOPSIGNAL is not SIGTERM, which starts the graceful shutdown")

    # Compose: the volume, the published ports, and a stop grace period longer than the shutdown.
    mounts = service.get("volumes", [])
    assert isinstance(mounts, list)
    if not any(str(mount).split(":")[1:2] == [str(volume)] for mount in mounts):
        problems.append(f"docker-compose.yml mounts no volume at {volume}")
    ports = service.get("ports", [])
    assert isinstance(ports, list)
    published = {_container_port(str(port)) for port in ports}
    if published != {slack_port, metrics_port}:
        problems.append(
            f"docker-compose.yml publishes {sorted(published)}, not {slack_port} and {metrics_port}"
        )
    needed = float(str(defaults["SHUTDOWN_GRACE_S"])) + SUSPEND_GRACE_S + FINAL_WRITES_S
    grace = seconds(str(service.get("stop_grace_period", "10s")))
    if grace <= needed:
        problems.append(f"stop_grace_period {grace:.0f} s is not longer than the shutdown ({needed:.0f} s)")
    if "--stop-timeout" not in dockerfile:
        problems.append("the Dockerfile does not show docker run --stop-timeout")

    # .env.example must not undo what the image needs.
    example = env_file_values(env_example)
    if example.get("METRICS_HOST", image_env.get("METRICS_HOST")) != "0.0.0.0":
        problems.append(
            "inside the container METRICS_HOST is not 0.0.0.0: published ports can't reach the endpoint"
        )
    ignored = set(dockerignore.split())
    for private in (".env", ".venv", "data"):
        if private not in ignored:
            problems.append(f".dockerignore lets {private} into the build context")
    return problems


def _words(arguments: str) -> list[str]:
    return re.findall(r"[^\s\[\]\",]+", arguments)


def _env_assignments(arguments: str) -> list[tuple[str, str]]:
    return re.findall(r"(\w+)=(\S+)", arguments)


def _copies(arguments: str, package: str) -> bool:
    sources = arguments.split()[:-1]
    return any(source.rstrip("/") in (package, f"./{package}", ".", "./") for source in sources)


def _container_port(mapping: str) -> int:
    """The container side of ``[host:]published:container``, ``${VAR:-default}`` read as its default."""
    match = re.search(r"(?:\$\{\w+:-(\d+)\}|(\d+))(?:/\w+)?$", mapping)
    assert match, mapping
    return int(match.group(1) or match.group(2))


def _service(compose: dict[str, object]) -> dict[str, object]:
    services = compose.get("services")
    assert isinstance(services, dict) and len(services) == 1, "one service"
    [service] = services.values()
    assert isinstance(service, dict)
    return service


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The settings' defaults by variable name, whatever this shell sets."""
    for name in ("DATABASE_URL", "METRICS_PORT", "SLACK_PORT", "SHUTDOWN_GRACE_S", "METRICS_HOST"):
        monkeypatch.delenv(name, raising=False)
    return flat_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def repo_files() -> dict[str, str]:
    return {
        "dockerfile": (REPO / "Dockerfile").read_text(),
        "compose": (REPO / "docker-compose.yml").read_text(),
        "env_example": (REPO / ".env.example").read_text(),
        "dockerignore": (REPO / ".dockerignore").read_text(),
    }


def test_the_container_files_agree_with_the_settings(defaults: dict[str, object]) -> None:
    assert docker_problems(**repo_files(), defaults=defaults) == []


@pytest.mark.parametrize(
    ("file", "before", "after", "problem"),
    [
        (
            "dockerfile",
            "os.environ.get('METRICS_PORT', '9090')",
            "'9090'",
            "HEALTHCHECK does not read its port",
        ),
        (
            "dockerfile",
            "os.environ.get('METRICS_PORT', '9090')",
            "os.environ.get('METRICS_PORT', '8080')",
            "falls back to port 8080",
        ),
        ("dockerfile", 'VOLUME ["/app/data"]', 'VOLUME ["/data"]', "not on VOLUME /data"),
        (
            "dockerfile",
            "WORKDIR /app",
            "WORKDIR /srv",
            ".env.example: DATABASE_URL sqlite:///data/bot.db is /srv/data/bot.db",
        ),
        ("dockerfile", "EXPOSE 3000 9090", "EXPOSE 9090", "EXPOSE [9090]"),
        ("dockerfile", "chown bot:bot /app/data", "true", "owned by bot"),
        (
            "dockerfile",
            "COPY pyproject.toml ./\n",
            "COPY pyproject.toml ./\nCOPY core ./core\n",
            "before the source is copied",
        ),
        ("compose", "stop_grace_period: 40s", "stop_grace_period: 10s", "stop_grace_period 10 s"),
        ("compose", "- bot-data:/app/data", "- bot-data:/data", "mounts no volume at /app/data"),
        ("compose", '      - "127.0.0.1:${SLACK_PORT:-3000}:${SLACK_PORT:-3000}"\n', "", "publishes [9090]"),
        (
            "env_example",
            "DATABASE_URL=sqlite:///data/bot.db",
            "DATABASE_URL=sqlite:///bot.db",
            ".env.example: DATABASE_URL",
        ),
        ("env_example", "# METRICS_HOST=127.0.0.1", "METRICS_HOST=127.0.0.1", "METRICS_HOST is not 0.0.0.0"),
        ("dockerignore", ".env\n", "", ".dockerignore lets .env"),
    ],
)
def test_the_lint_catches_each_disagreement(
    defaults: dict[str, object], file: str, before: str, after: str, problem: str
) -> None:
    files = repo_files()
    assert before in files[file], f"{file} changed: update this test's example"
    files[file] = files[file].replace(before, after, 1)
    problems = docker_problems(**files, defaults=defaults)
    assert any(problem in found for found in problems), problems


def test_the_lint_follows_the_settings_defaults(defaults: dict[str, object]) -> None:
    changed = defaults | {"METRICS_PORT": 9100, "SHUTDOWN_GRACE_S": 60}
    problems = docker_problems(**repo_files(), defaults=changed)
    assert any("falls back to port 9090" in problem for problem in problems)
    assert any("stop_grace_period 40 s" in problem for problem in problems)


def test_database_path_is_what_the_bot_opens() -> None:
    assert database_path("sqlite:///data/bot.db") == Path("data/bot.db")
    assert database_path("sqlite:////app/data/bot.db") == Path("/app/data/bot.db")
    assert database_path("sqlite://:memory:") is None


def healthcheck_command() -> list[str]:
    [healthcheck] = [
        i.arguments for i in dockerfile_instructions(repo_files()["dockerfile"]) if i.keyword == "HEALTHCHECK"
    ]
    command = json.loads(healthcheck.partition("CMD")[2])
    assert isinstance(command, list)
    return [sys.executable if part == "python" else str(part) for part in command]


async def run_healthcheck(metrics_port: str) -> int:
    env = {key: value for key, value in os.environ.items() if key != "METRICS_PORT"} | {
        "METRICS_PORT": metrics_port
    }
    process = await asyncio.create_subprocess_exec(
        *healthcheck_command(), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def test_the_health_check_asks_healthz_on_metrics_port() -> None:
    asked: list[str] = []

    async def healthz(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    async with serving(app) as port:
        assert await run_healthcheck(str(port)) == 0
        assert asked == ["/healthz"]
    assert await run_healthcheck(str(port)) != 0, "nothing listens there any more"
    assert await run_healthcheck("0") == 0, "METRICS_PORT=0: no endpoint to check"
