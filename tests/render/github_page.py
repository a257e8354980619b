"""Show Markdown the way a GitHub pull-request comment does, in headless Debian Chromium.

to_html     GitHub-flavoured Markdown (tables, strikethrough, raw HTML that GitHub keeps, such
            as <details>) to a page; ```mermaid fences become diagrams that Mermaid draws
serve       a loopback HTTP server for the pages, Mermaid and GitHub's Markdown stylesheet
            (both from node_modules here: nothing is fetched from a CDN)
browser     Chromium driven over WebDriver (selenium + Debian's chromedriver)
show        load a page and wait until every diagram is drawn or has failed
screenshot  the whole page as PNG

Markdown goes through markdown-it-py with GitHub's extensions, then through a tag and attribute
allowlist modelled on GitHub's sanitiser. What the allowlist removes is kept in
``Page.stripped`` so a test can insist that the report uses only HTML that GitHub keeps.
"""

from __future__ import annotations

import functools
import html
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH = 1280

INSTALL_BROWSER = "apt-get install -y chromium chromium-driver fonts-noto-color-emoji"
INSTALL_NODE = "npm ci --prefix tests/render"
INSTALL_PYTHON = "pip install -e '.[dev]'  (selenium, pillow)"

# Debian's Chromium in a closed network: no sandbox (root in CI), no GPU, nothing that calls home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
    f"--window-size={WIDTH},900",
]

# After GitHub's sanitiser: the tags and attributes a comment may use.
GITHUB_TAGS = """
a abbr b bdo blockquote br caption cite code dd del details dfn div dl dt em figcaption figure
h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p picture pre q rp rt ruby s samp small source span
strike strong sub summary sup table tbody td tfoot th thead time tr tt ul var wbr
"""
GITHUB_ATTRIBUTES = "align alt colspan dir height href id lang name open rowspan src title width"
ALLOWED_TAGS = frozenset(GITHUB_TAGS.split())
ALLOWED_ATTRIBUTES = frozenset(GITHUB_ATTRIBUTES.split())
TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)([^>]*)>")
ATTRIBUTE = re.compile(r"([^\s=/]+)(\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?")


class MissingToolsError(Exception):
    """Chromium, chromedriver, selenium, Pillow or the npm packages are not installed."""


def missing_tools() -> list[str]:
    """What is missing, each with the command that installs it."""
    problems = []
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            problems.append(f"{path} is missing: {INSTALL_BROWSER}")
    for module in ("selenium", "PIL"):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"Python package {module} is missing: {INSTALL_PYTHON}")
    for package in ("mermaid/dist/mermaid.min.js", "github-markdown-css/package.json"):
        if not (NODE_MODULES / package).is_file():
            problems.append(f"tests/render/node_modules/{package} is missing: {INSTALL_NODE}")
    return problems


def require_tools() -> None:
    problems = missing_tools()
    if problems:
        raise MissingToolsError(
            "cannot render the report as GitHub does:\n  " + "\n  ".join(problems)
        )


# --- Markdown to a page ---------------------------------------------------------------


@dataclass
class Page:
    """An HTML page and the HTML that the sanitiser removed from the Markdown."""

    html: str
    stripped: list[str] = field(default_factory=list)


def to_html(markdown: str, title: str = "report") -> Page:
    """The comment page for ``markdown``, as GitHub would render it."""
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML

    stripped: list[str] = []
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    assert isinstance(md.renderer, RendererHTML)
    default_fence = md.renderer.rules["fence"]

    def fence(_self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        if token.info.strip().split(" ")[0] == "mermaid":
            return f'<div class="mermaid">{html.escape(token.content)}</div>\n'
        return str(default_fence(tokens, idx, options, env))

    def raw_html(_self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return _sanitise(tokens[idx].content, stripped)

    md.add_render_rule("fence", fence)
    md.add_render_rule("html_block", raw_html)
    md.add_render_rule("html_inline", raw_html)
    body = md.render(markdown)
    template = Template((HERE / "page.html").read_text(encoding="utf-8"))
    return Page(template.substitute(title=html.escape(title), body=body), stripped)


def _sanitise(fragment: str, stripped: list[str]) -> str:
    """Drop tags and attributes that GitHub drops; record each one."""

    def tag(match: re.Match[str]) -> str:
        slash, name, attributes = match.groups()
        if name.lower() not in ALLOWED_TAGS:
            stripped.append(match.group(0))
            return ""
        kept = []
        for attribute in ATTRIBUTE.finditer(attributes):
            if attribute.group(1).lower() in ALLOWED_ATTRIBUTES:
                kept.append(attribute.group(0))
            else:
                stripped.append(f"{attribute.group(0)} on <{name}>")
        return f"<{slash}{name}{''.join(' ' + a for a in kept)}>"

    return TAG.sub(tag, fragment)


# --- serving and browsing -------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` (pages plus Mermaid and the stylesheet) on loopback; yields the base URL."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in (
        ("mermaid", NODE_MODULES / "mermaid" / "dist"),
        ("github-markdown-css", NODE_MODULES / "github-markdown-css"),
    ):
        link = site / name
        if not link.exists():
            link.symlink_to(source, target_is_directory=True)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def browser(profile: Path, log: Path | None = None) -> Iterator[Any]:
    """Headless Chromium over WebDriver, with a new empty profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_tools()
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # a driver path given here means selenium never runs Selenium Manager (which downloads)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log) if log else None)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()


def show(driver: Any, url: str, timeout: float = 60) -> None:
    """Open ``url`` and wait until the page says every diagram is drawn or failed."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.documentElement.dataset.rendered") == "done"
    )


def screenshot(driver: Any) -> bytes:
    """The whole page (not just the window) as PNG, over the DevTools protocol."""
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    return base64.b64decode(shot["data"])
