"""Dependencies point one way, bot → adapters → core, and core imports no platform SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLATFORM_SDKS = {
    "discord",
    "slack_bolt",
    "slack_sdk",
    "aiohttp",
    "fastapi",
    "starlette",
    "uvicorn",
    "websockets",
}
FORBIDDEN = {
    "core": PLATFORM_SDKS | {"bot", "adapters"},
    "adapters": {"bot"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_inward(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_modules(path) & FORBIDDEN[package]) for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_checker_sees_every_import_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import discord.ext\nfrom slack_sdk.web import x\nimport os, bot\nfrom . import y\n")
    assert imported_modules(sample) == {"discord", "slack_sdk", "os", "bot"}
