"""What the browser tests share: the system Chromium, the rule for when they may skip, a static web server
for a built folder, and Chromium launched with no background traffic."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
QUIET_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--no-first-run", "--disable-sync"]


def require_browser():
    """Skip without Playwright or a system Chromium, except under CI=true, where that is a failure."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -r requirements-dev.txt)"
    else:
        reason = None if CHROMIUM else "no system Chromium (apt-get install chromium)"
    if reason and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run under CI=true: {reason}")
    if reason:
        pytest.skip(reason)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # failures are reported by the tests, not by a line per request
        pass


@contextlib.contextmanager
def serve(directory):
    """A static web server for ``directory`` on a free local port; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def chromium(*extra_args: str):
    """Headless system Chromium with QUIET_ARGS and ``extra_args``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*QUIET_ARGS, *extra_args])
        yield browser
        browser.close()
