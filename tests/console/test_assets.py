"""The vendored front-end file is the npm release it claims to be, and the pages load
only files the console serves itself."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import idgraph.console

STATIC = Path(idgraph.console.__file__).parent / "static"
TEMPLATES = Path(idgraph.console.__file__).parent / "templates"


def test_the_vendored_htmx_is_the_recorded_release():
    readme = (STATIC / "vendor" / "README.md").read_text()
    recorded = re.search(r"sha256 of the file: `([0-9a-f]{64})`", readme).group(1)
    actual = hashlib.sha256((STATIC / "vendor" / "htmx-2.0.11.min.js").read_bytes()).hexdigest()
    assert actual == recorded


def test_pages_load_scripts_and_styles_from_the_console_only():
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for url in re.findall(r'(?:src|href)="([^"{]+)"', text):
            assert url.startswith("/"), f"{template.name}: {url} is not the console's own"
        assert "<script>" not in text and "style=" not in text, template.name  # CSP: no inline
        if "<script src" in text:
            for path in re.findall(r'<script src="/static/([^"]+)"', text):
                assert (STATIC / path).is_file(), path
