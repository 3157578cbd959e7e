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

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import uvicorn
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, ROLES, ConsoleWorld

from idgraph.console.app import create_app
from idgraph.console.settings import ConsoleSettings
from idgraph.core.ports import free_port
from idgraph.service.server import create_server
from idgraph.service.settings import GrpcSettings
from idgraph.serving import open_key_admin, open_served
from idgraph.settings import Settings


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def browser(console_world) -> Iterator:
    """Chromium for one test module. Module scope, not session: Playwright's sync API runs
    an event loop in this thread while it is open, and the stream tests' asyncio.run()
    refuses to start inside one."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run tools/install_chromium.sh "
                           "(make test does)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    assert console_world.errors == [], console_world.errors  # no JavaScript error anywhere
