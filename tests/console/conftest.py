"""A world for the console's tests: the demo's data, a real gRPC server over it, API keys
of every role, the console served by uvicorn on a free loopback port, and Debian's
Chromium driven by Playwright.

Chromium is ``/usr/bin/chromium`` (``make test`` installs it: tools/install_chromium.sh);
a missing browser fails these tests, it does not skip them. Screenshots go to
``build/test-artifacts/console/`` (``IDGRAPH_TEST_ARTIFACTS`` overrides). Every page the
tests open records its console errors and uncaught exceptions; the session fails if any
were seen (``browser_errors``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import uvicorn

from idgraph.console.app import create_app
from idgraph.console.settings import ConsoleSettings
from idgraph.core.ports import free_port
from idgraph.service.server import create_server
from idgraph.service.settings import GrpcSettings
from idgraph.serving import open_key_admin, open_served
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


@pytest.fixture(scope="session")
def console_world(tmp_path_factory) -> Iterator[ConsoleWorld]:
    data_dir = tmp_path_factory.mktemp("console") / "data"
    # the demo's data: 4,000 record events, the example segments, a trained model with
    # pairs for review, a consent withdrawal and a forget request
    subprocess.run([sys.executable, "-m", "idgraph.cli", "demo", "--records", "4000",
                    "--lookups", "20", "--data-dir", str(data_dir)],
                   check=True, capture_output=True, timeout=600)
    settings = Settings(data_dir=data_dir)
    admin, store = open_key_admin(settings, None)
    keys = {name: admin.create(f"console test {name}", roles).text
            for name, roles in ROLES.items()}
    store.close()
    served = open_served(settings)
    server, port = create_server(served.queries, GrpcSettings(), "127.0.0.1:0",
                                 **served.server_kwargs())
    server.start()
    console_port = free_port()
    app = create_app(ConsoleSettings(server=f"127.0.0.1:{port}", port=console_port))
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=console_port,
                                        access_log=False, log_level="warning",
                                        log_config=None))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not web.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    world = ConsoleWorld(settings, channel, keys, f"http://127.0.0.1:{console_port}")
    yield world
    channel.close()
    web.should_exit = True
    thread.join(10)
    server.stop(0).wait()
    served.close()


@pytest.fixture(scope="session")
def browser(console_world) -> Iterator:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run tools/install_chromium.sh "
                           "(make test does)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    assert console_world.errors == [], console_world.errors  # no JavaScript error anywhere


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
