"""The page is served by tingxie itself and needs nothing from the internet."""
from __future__ import annotations

import re

from web.pages import STATIC_DIR
from tests.support.settings import embedded_only


@embedded_only
def test_page_and_assets_are_served_with_versions(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'data-api="/api/v1"' in html
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert {a.split("?")[0] for a in assets} == {"/assets/app.css", "/assets/app.js", "/assets/favicon.svg"}
    for url in assets:
        assert re.search(r"\?v=[0-9a-f]{10}$", url), url
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.get_data() == (STATIC_DIR / url.split("?")[0].rsplit("/", 1)[1]).read_bytes()


def test_nothing_is_loaded_from_another_host():
    """No CDN, no web fonts, no remote scripts: the page works on a machine with no internet."""
    templates = STATIC_DIR.parent / "templates"
    for path in [*STATIC_DIR.iterdir(), *templates.iterdir()]:
        text = path.read_text(encoding="utf-8")
        remote = [u for u in re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text, re.I)
                  if not u.startswith("http://www.w3.org/")]
        assert not remote, f"{path.name} loads {remote}"
        assert "@import" not in text and "@font-face" not in text, path.name
