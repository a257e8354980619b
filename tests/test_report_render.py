"""report.md as a reviewer sees it on the pull request: GitHub-flavoured Markdown and Mermaid
rendered in headless Chromium (Debian's), checked in the live DOM and kept as a screenshot.

The report comes from real runs of the example project: a first model is trained and promoted,
then a candidate with one changed hyperparameter is compared with it, so every comparison column
is filled. The PNG goes to the test's tmp_path and, when CI_ML_ARTIFACTS names a directory, to
``$CI_ML_ARTIFACTS/report-render/`` for people to look at. Missing tools fail the test with the
command that installs them (see tests/render/github_page.py).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from ci_ml import api, rundir
from ci_ml.project import open_project
from ci_ml.registry import open_registry
from tests.render import github_page

pytestmark = pytest.mark.slow

METRICS_HEADER = ["metric", "production", "candidate", "Δ", "95% CI", "rule"]
CANDIDATE, PRODUCTION, REFERENCE = "#1f77b4", "#ff7f0e", "#8c959f"  # report/charts.py's colours
MODEL: dict[str, Any] = {
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15},
    "seed": 0,
}

# What the page shows, read from the DOM after Mermaid has finished.
FACTS = r"""
const body = document.querySelector("article.markdown-body");
const first = body.firstElementChild;
function texts(nodes) { return Array.from(nodes, function (n) { return n.textContent.trim(); }); }
return {
  first: {tag: first.tagName, text: first.textContent.trim(),
          top: first.getBoundingClientRect().top},
  tables: Array.from(body.querySelectorAll("table"), function (table) {
    return {header: texts(table.querySelectorAll("thead th")),
            rows: Array.from(table.querySelectorAll("tbody tr"), function (tr) {
              return texts(tr.cells); }),
            shown: table.getBoundingClientRect().height > 0};
  }),
  charts: Array.from(body.querySelectorAll("div.mermaid"), function (node) {
    const svg = node.querySelector("svg");
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {kind: svg ? svg.getAttribute("aria-roledescription") : null,
            error: node.dataset.error || null, text: svg ? svg.textContent : "",
            title: svg && svg.querySelector("g.chart-title text")
              ? svg.querySelector("g.chart-title text").textContent : null,
            bars: svg ? svg.querySelectorAll("g[class^='bar-plot'] rect").length : 0,
            lines: svg ? Array.from(svg.querySelectorAll("g[class^='line-plot'] path"),
              function (path) {
                const numbers = (path.getAttribute("d").match(/-?\d+(\.\d+)?/g) || []).map(Number);
                const points = [];
                for (let i = 0; i + 1 < numbers.length; i += 2) {
                  points.push([numbers[i], numbers[i + 1]]);
                }
                return {stroke: path.getAttribute("stroke"), points: points};
              }) : [],
            width: box.width, height: box.height};
  }),
  problems: window.pageProblems,
};
"""


@dataclass
class Chromium:
    """A running browser and the loopback site it reads pages from."""

    driver: Any
    url: str
    site: Path

    def show(self, page: github_page.Page, name: str) -> dict[str, Any]:
        (self.site / f"{name}.html").write_text(page.html, encoding="utf-8")
        github_page.show(self.driver, f"{self.url}/{name}.html")
        facts: dict[str, Any] = self.driver.execute_script(FACTS)
        return facts


def _chromium(request: pytest.FixtureRequest) -> Chromium:
    """The browser; a missing tool fails the test (not an error in setup, not a skip)."""
    try:
        github_page.require_tools()
    except github_page.MissingToolsError as exc:
        message = str(exc)
    else:
        browser: Chromium = request.getfixturevalue("chromium")
        return browser
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    work = tmp_path_factory.mktemp("chromium")
    with (
        github_page.browser(work / "profile", log=work / "chromedriver.log") as driver,
        github_page.serve(work / "site") as url,
    ):
        yield Chromium(driver, url, work / "site")


@pytest.fixture(scope="module")
def compared_run(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a candidate compared with a promoted production model."""
    root = tmp_path_factory.mktemp("report-render") / "project"
    shutil.copytree(pulled_example, root, symlinks=True)
    first = _run(root, MODEL)
    open_registry(".ci-ml/registry", root=root).promote(first["register"].version, None, by="test")
    candidate = {**MODEL, "params": {**MODEL["params"], "learning_rate": 0.1}}
    _run(root, candidate)
    return root / ".ci-ml" / "runs" / "latest"


def _run(root: Path, model: dict[str, Any]) -> dict[str, Any]:
    path = root / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "model": model}, sort_keys=False))
    project = open_project(path)
    return api.run(project, rundir.new_run_dir(project.runs_dir))


def test_report_renders_verdict_table_and_chart(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    chromium = _chromium(request)
    compared_run: Path = request.getfixturevalue("compared_run")
    markdown = (compared_run / rundir.REPORT).read_text(encoding="utf-8")
    verdict = rundir.read_json(compared_run, rundir.GATE_REPORT)["verdict"]
    assert "```mermaid" in markdown, "report.md has no ```mermaid chart"
    page = github_page.to_html(markdown, title="ci-ml report")
    assert page.stripped == [], "report.md uses HTML that GitHub removes"
    facts = chromium.show(page, "report")
    shots = _save(chromium, tmp_path, markdown, page)

    assert facts["problems"] == []
    first = facts["first"]
    assert first["tag"] == "H2" and f"ci-ml verdict: {verdict.upper()}" in first["text"]
    assert first["top"] < 100, "the verdict is not at the top of the comment"

    table = next((t for t in facts["tables"] if t["header"] == METRICS_HEADER), None)
    assert table is not None, [t["header"] for t in facts["tables"]]
    assert table["shown"], "the metrics table is hidden (inside a closed <details>?)"
    roc_auc = next(row for row in table["rows"] if row[0] == "roc_auc")
    production, candidate = (float(cell) for cell in roc_auc[1:3])
    delta_text = roc_auc[3]  # e.g. "-0.0123 ▼ worse": the sign and which way is better
    delta = 0.0 if delta_text == "±0" else float(delta_text.split()[0])
    assert delta == pytest.approx(candidate - production, abs=2e-4)
    if delta:
        assert ("better" in delta_text) == (delta > 0), delta_text  # roc_auc: higher is better
    assert roc_auc[4].startswith("[")

    assert facts["charts"], "no Mermaid chart on the page"
    for chart in facts["charts"]:
        assert chart["error"] is None, chart["error"]
        assert chart["kind"] == "xychart"
        assert chart["width"] > 300 and chart["height"] > 200
    metrics = facts["charts"][0]
    assert "roc_auc" in metrics["text"] and metrics["bars"] >= 2

    _assert_real_image(shots["report.png"], min_height=1000)
    _assert_real_image(shots["chart.png"], min_height=200)


def test_the_curves_show_both_models_when_unfolded(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A reviewer opens "Curves": the ROC chart has the candidate's and production's lines (and
    chance), the calibration chart both models' and the perfect line, each in its colour."""
    chromium = _chromium(request)
    compared_run: Path = request.getfixturevalue("compared_run")
    markdown = (compared_run / rundir.REPORT).read_text(encoding="utf-8")
    assert "<details><summary>Curves: ROC, precision-recall, calibration" in markdown
    page = github_page.to_html(markdown, title="ci-ml report")
    chromium.show(page, "curves")
    driver = chromium.driver
    summary = next(
        s for s in driver.find_elements("css selector", "summary") if s.text.startswith("Curves")
    )
    inside = summary.find_element("xpath", "..").find_element("css selector", "div.mermaid")
    assert not inside.is_displayed(), "the curves are not folded"
    summary.click()
    assert inside.is_displayed()
    facts: dict[str, Any] = driver.execute_script(FACTS)
    charts = {c["title"].split(":")[0]: c for c in facts["charts"][1:]}
    assert sorted(charts) == ["Calibration", "Precision-recall", "ROC"], list(charts)
    roc, calibration = charts["ROC"], charts["Calibration"]
    for chart, points in ((roc, 21), (calibration, 10)):
        assert chart["error"] is None and chart["kind"] == "xychart", chart["error"]
        assert [line["stroke"] for line in chart["lines"]] == [REFERENCE, PRODUCTION, CANDIDATE]
        assert [len(line["points"]) for line in chart["lines"]] == [points] * 3
        assert chart["width"] > 300 and chart["height"] > 200
    chance, production, candidate = (line["points"] for line in roc["lines"])
    # both models above chance (SVG y grows downwards), meeting it at (0, 0)..(1, 1)
    for model in (production, candidate):
        assert [x for x, _ in model] == pytest.approx([x for x, _ in chance])
        assert all(y <= level + 0.5 for (_, y), (_, level) in zip(model, chance, strict=True))
        assert model[-1] == pytest.approx(chance[-1])
        assert any(y < level - 50 for (_, y), (_, level) in zip(model, chance, strict=True))
    assert roc["title"] == "ROC: candidate blue, production orange, chance grey"
    assert "false positive rate" in roc["text"] and "observed rate" in calibration["text"]

    nodes = driver.find_elements("css selector", "div.mermaid")
    shown = {c["title"].split(":")[0]: node for c, node in zip(facts["charts"], nodes, strict=True)}
    for name in ("ROC", "Calibration"):
        png = shown[name].screenshot_as_png
        (tmp_path / f"{name.lower()}.png").write_bytes(png)
        _assert_real_image(png, min_height=200)
    if os.environ.get("CI_ML_ARTIFACTS"):
        target = Path(os.environ["CI_ML_ARTIFACTS"]) / "report-render"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("roc", "calibration"):
            shutil.copy(tmp_path / f"{name}.png", target / f"{name}.png")


def test_a_broken_diagram_and_html_that_github_strips_are_caught(
    request: pytest.FixtureRequest,
) -> None:
    """The checks above can fail: a Mermaid syntax error and a <script> do not slip through."""
    chromium = _chromium(request)
    good = 'xychart-beta\n  x-axis ["roc_auc", "f1"]\n  bar [0.84, 0.61]\n  bar [0.83, 0.58]'
    broken = 'xychart-beta\n  x-axis ["roc_auc", "f1"\n  bar [0.84, 0.61]'
    markdown = (
        f"## verdict\n\n```mermaid\n{good}\n```\n\n```mermaid\n{broken}\n```\n\n"
        '<span style="color: red">red</span>\n\n<script>alert(1)</script>\n'
    )
    page = github_page.to_html(markdown)
    assert page.stripped == ['style="color: red" on <span>', "<script>", "</script>"]
    good_chart, broken_chart = chromium.show(page, "broken")["charts"]
    assert good_chart["kind"] == "xychart" and good_chart["error"] is None
    assert good_chart["bars"] == 4
    assert broken_chart["kind"] == "error" and "Parse error" in broken_chart["error"]


def _save(
    chromium: Chromium, tmp_path: Path, markdown: str, page: github_page.Page
) -> dict[str, bytes]:
    """The page, its Markdown and screenshots of it and of the chart, kept for people."""
    files = {
        "report.md": markdown.encode(),
        "report.html": page.html.encode(),
        "report.png": github_page.screenshot(chromium.driver),
        "chart.png": chromium.driver.find_element("css selector", "div.mermaid").screenshot_as_png,
    }
    targets = [tmp_path]
    if os.environ.get("CI_ML_ARTIFACTS"):
        targets.append(Path(os.environ["CI_ML_ARTIFACTS"]) / "report-render")
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (target / name).write_bytes(data)
    return files


def _assert_real_image(png: bytes, min_height: int) -> None:
    """A decodable PNG of a sensible size with something drawn on it, not a blank page."""
    from PIL import Image

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert 300 <= width <= github_page.WIDTH and min_height <= height <= 20_000
        grey = image.convert("L")
    darkest, lightest = cast(tuple[int, int], grey.getextrema())
    assert lightest - darkest > 150, "the image is (nearly) one colour"
    histogram = grey.histogram()
    inked = sum(histogram[:240]) / (width * height)
    assert 0.01 < inked < 0.6, f"{inked:.1%} of the image is drawn on"
