"""report.md shown the way GitHub shows it, in headless Chromium (see github_page.py)."""
