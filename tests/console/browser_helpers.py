"""What the console's browser tests share: the browser's settings, the world they run in,
signing in as a role, and screenshots kept as artefacts (see conftest.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from idgraph.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
LAPTOP = {"width": 1366, "height": 768}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("IDGRAPH_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts")
                 ) / "console"
ROLES = {
    "marketer": ["marketer"], "steward": ["steward"], "privacy": ["privacy"],
    "admin": ["admin"], "activation": ["activation"],
}


@dataclass
class ConsoleWorld:
    settings: Settings
    channel: grpc.Channel
    keys: dict[str, str]
    url: str
    errors: list[str] = field(default_factory=list)

    def md(self, role: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.keys[role]}")]


def open_as(browser, world: ConsoleWorld, role: str):
    """A new browser context (its own cookies) signed in with ``role``'s key; console
    errors and page errors are collected into ``world.errors``."""
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and world.errors.append(
        f"{role} {page.url}: {msg.text}"))
    page.on("pageerror", lambda exc: world.errors.append(f"{role} {page.url}: {exc}"))
    page.goto(world.url + "/signin")
    page.fill("#key", world.keys[role])
    page.click("button[type=submit]")
    page.wait_for_url(world.url + "/")
    return page


def shoot(page, name: str) -> Path:
    """Keep a full-page screenshot as a test artefact, after checking the page fits a
    laptop's width (no sideways scrolling)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name}: {overflow}px wider than a {LAPTOP['width']}px window"
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
