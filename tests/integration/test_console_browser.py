"""The web console in a real browser (Debian's chromium driven by Playwright) against `tidegate run`."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paramiko
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from connectors.accounts import Credentials, add_account
from streams.core.status import FINAL_STATUSES as FINAL
from tests.integration.run_helpers import (
    read_welcome,
    sftp_port,
    start_run,
    stop_run,
    welcome_value,
)

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SETTLE = 0.3
REPO = Path(__file__).resolve().parents[2]
# Where `shot` saves each page: TIDEGATE_SCREENSHOTS (relative to the repository:
# `TIDEGATE_SCREENSHOTS=docs/screenshots` refreshes the images the docs show), else a
# directory of this pytest run's temporary files, so a test run leaves the tree clean.
SCREENSHOTS_VARIABLE = "TIDEGATE_SCREENSHOTS"
screenshots: list[Path] = []  # set once per module by `screenshots_dir`

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@dataclass
class Running:
    proc: subprocess.Popen[str]
    data: Path
    url: str
    sftp_port: int
    operator_token: str
    accounts: dict[str, Credentials]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data = tmp_path_factory.mktemp("console") / "data"
    config = data / "accounts.toml"
    accounts = {name: add_account(config, name) for name in ("alice", "bob")}
    proc = start_run(data, "--settle", str(SETTLE))
    try:
        text = read_welcome(proc, 30, last="op_")
        port = sftp_port(text)
        url = welcome_value(text, r"web console\s+(http://\S+?)/console/")
        token = welcome_value(text, r"operator token\s+(op_\S+)")
        yield Running(proc, data, url, port, token, accounts)
    finally:
        stop_run(proc, 15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    dialogs: list[str] = []

    def refuse(dialog: Any) -> None:  # an alert or confirm means a script ran: note it
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    yield page
    context.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"


def sign_in(page: Any, running: Running, account: str = "alice") -> None:
    page.goto(f"{running.url}/console/")
    assert page.url.endswith("/console/signin")
    page.fill("#account", account)
    page.fill("#api_key", running.accounts[account].api_key)
    page.click("#signin-account")
    page.wait_for_url(f"{running.url}/console/")


def sftp_put(
    running: Running, account: str, name: str, content: bytes, folder: str = "events"
) -> None:
    transport = paramiko.Transport(("127.0.0.1", running.sftp_port))
    try:
        creds = running.accounts[account]
        transport.connect(username=creds.username, password=creds.password)
        client = paramiko.SFTPClient.from_transport(transport)
        assert client is not None
        client.putfo(io.BytesIO(content), f"{folder}/{name}")
        client.close()
    finally:
        transport.close()


def zeta_lines(n: int, *, start: int = 0, bad_every: int = 0) -> bytes:
    now = datetime.now(UTC) - timedelta(minutes=5)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S")
    out = []
    for i in range(start, start + n):
        if bad_every and i % bad_every == 0:
            out.append(
                b'{"user_id": "u%d", "event_type": "<b>bold</b>", "timestamp": "not a time"}' % i
            )
        else:
            out.append(
                json.dumps(
                    {"user_id": f"u{i}", "event_type": "viewed", "timestamp": stamp}
                ).encode()
            )
    return b"\n".join(out) + b"\n"


def row(page: Any, name: str) -> Any:
    return page.locator("#rows tr").filter(has_text=name)


@pytest.fixture(scope="module", autouse=True)
def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    wanted = os.environ.get(SCREENSHOTS_VARIABLE, "").strip()
    where = REPO / wanted if wanted else tmp_path_factory.mktemp("screenshots")
    where.mkdir(parents=True, exist_ok=True)
    screenshots[:] = [where]
    yield where
    screenshots.clear()


def shot(page: Any, name: str) -> None:
    [where] = screenshots
    page.screenshot(path=str(where / f"{name}.png"), full_page=True)


def test_a_dropped_file_appears_live_and_reaches_its_final_status(
    page: Any, running: Running
) -> None:
    sign_in(page, running)
    page.wait_for_selector("#live-state")
    marker = page.evaluate("() => { window.__noReload = 1; return 1 }")
    sftp_put(running, "alice", "live-drop.jsonl", zeta_lines(20))
    started = time.monotonic()
    target = row(page, "live-drop.jsonl").locator("td.status")
    playwright_api.expect(target).to_have_text(
        re.compile("success"), timeout=(2 + SETTLE) * 1000 + 2000
    )
    elapsed = time.monotonic() - started
    assert page.evaluate("() => window.__noReload") == marker  # the same document: no reload
    assert elapsed < 2 + SETTLE + 1.0, f"final status shown after {elapsed:.2f} s"
    shot(page, "history-live")


def test_a_large_drop_shows_its_progress_bar_advancing(page: Any, running: Running) -> None:
    sign_in(page, running)
    sftp_put(running, "alice", "large-drop.jsonl", zeta_lines(200_000))
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        target = row(page, "large-drop.jsonl")
        if target.count():
            status = target.locator("td.status").inner_text()
            decided = int(target.locator("progress").get_attribute("data-decided") or 0)
            seen.append((status, decided))
            if status in FINAL:
                break
        time.sleep(0.05)
    assert seen and seen[-1][0] == "success", seen[-5:]
    during = sorted({d for s, d in seen if s == "processing" and 0 < d < 200_000})
    assert len(during) >= 2, (
        f"no advancing progress seen while processing: {seen[:5]}...{seen[-5:]}"
    )
    assert during[-1] > during[0]


def test_the_feed_shows_an_upload_in_progress_live_until_it_ends(
    page: Any, running: Running
) -> None:
    sign_in(page, running)
    page.goto(f"{running.url}/console/feed")
    marker = page.evaluate("() => { window.__noReload = 2; return 2 }")
    sftp_put(running, "alice", "feed-drop.jsonl", zeta_lines(100_000))
    active = page.locator("#in-progress tr").filter(has_text="feed-drop.jsonl")
    playwright_api.expect(active).to_have_count(1, timeout=15_000)
    shot(page, "feed-in-progress")
    playwright_api.expect(active).to_have_count(0, timeout=120_000)  # finished: it leaves
    assert page.evaluate("() => window.__noReload") == marker


def _upload_id(page: Any, name: str) -> str:
    href = row(page, name).locator("td.name a").get_attribute("href")
    assert isinstance(href, str)
    return href.rsplit("/", 1)[-1]


def test_the_upload_page_lists_rejected_lines_and_its_feedback_matches_the_cli(
    page: Any, running: Running
) -> None:
    sign_in(page, running)
    sftp_put(running, "alice", "with-errors.jsonl", zeta_lines(30, bad_every=7))
    playwright_api.expect(row(page, "with-errors.jsonl").locator("td.status")).to_have_text(
        "partial", timeout=10_000
    )
    upload_id = _upload_id(page, "with-errors.jsonl")
    page.click(f"#row-{upload_id} td.name a")
    page.wait_for_selector("#rejected")
    rejected = page.locator("#rejected tbody tr")
    assert rejected.count() == 5  # lines 1, 8, 15, 22, 29
    first = rejected.nth(0).inner_text()
    assert "with-errors.jsonl" in first and "<b>bold</b>" in first  # the raw line, as text
    assert page.locator("#rejected b").count() == 0  # HTML in a line is shown, never rendered
    assert page.locator("#by-code").inner_text().count("\n") >= 1
    page.fill("#explain-line", "8")
    page.click("#explain-go")
    verdict = page.locator("#verdict").inner_text()
    assert "rejected by the rule" in verdict and "a rejected line never triggers" in verdict
    shot(page, "upload")
    with page.expect_download() as info:
        page.click("#feedback")
    downloaded = Path(info.value.path()).read_bytes()
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidegate.cli",
            "upload",
            upload_id,
            "--errors",
            "--data",
            str(running.data),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert downloaded == cli and cli.count(b"\n") == 5


def test_dead_letters_are_browsed_by_code_and_downloaded(page: Any, running: Running) -> None:
    sftp_put(running, "bob", "bobs-bad.jsonl", zeta_lines(4, bad_every=2))  # lines 1 and 3
    sign_in(page, running)
    page.goto(f"{running.url}/console/deadletters")
    codes = page.locator("#letters-code option")
    assert codes.count() >= 2  # "every code" and at least the one of with-errors.jsonl
    code = codes.nth(1).get_attribute("value")
    assert code
    page.select_option("#letters-code", code)
    page.click("#letters-apply")
    cells = page.locator("#letters tbody tr td:nth-child(4)")
    assert cells.count() >= 5
    assert {cells.nth(i).inner_text() for i in range(cells.count())} == {code}
    assert "bobs-bad.jsonl" not in page.locator("#letters").inner_text()
    shot(page, "deadletters")
    with page.expect_download() as info:
        page.click("#letters-download")
    docs = [json.loads(x) for x in Path(info.value.path()).read_bytes().splitlines()]
    assert len(docs) == cells.count() and {d["code"] for d in docs} == {code}
    assert all(d["upload"] != "bobs-bad.jsonl" for d in docs)
    assert any("<b>bold</b>" in d["raw"] for d in docs)


def _import(page: Any, running: Running, path: Path, *, trigger: bool) -> str:
    page.goto(f"{running.url}/console/import")
    page.set_input_files("#file", str(path))
    page.click("#dry-run")
    page.wait_for_selector("#report")
    assert page.locator("#report-status").inner_text() == "success"
    assert "accepted 3" in page.locator("#report-counts").inner_text()
    shot(page, "import-dry-run")
    if trigger:
        page.check("#trigger")
    page.click("#import")
    page.wait_for_url(re.compile(r"/console/uploads/"))
    playwright_api.expect(page.locator("#upload-status")).to_have_text("success", timeout=10_000)
    url: str = page.url
    return url.rsplit("/", 1)[-1]


def _triggers_of(running: Running, upload_id: str) -> list[dict[str, Any]]:
    path = running.data / "out" / "triggers.jsonl"
    if not path.exists():
        return []
    docs = [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [d for d in docs if upload_id in json.dumps(d)]


def test_an_import_from_the_page_triggers_only_when_ticked(
    page: Any, running: Running, tmp_path: Path
) -> None:
    sign_in(page, running)
    passive = tmp_path / "passive.jsonl"
    passive.write_bytes(zeta_lines(3, start=1000))
    ticked = tmp_path / "ticked.jsonl"
    ticked.write_bytes(zeta_lines(3, start=2000))
    passive_id = _import(page, running, passive, trigger=False)
    ticked_id = _import(page, running, ticked, trigger=True)
    page.fill("#explain-line", "2")
    page.click("#explain-go")
    assert (
        page.locator("#verdict")
        .inner_text()
        .endswith("accepted — passed every rule. It triggered.")
    )
    shot(page, "import-done")
    page.goto(f"{running.url}/console/uploads/{passive_id}?line=2")
    verdict = page.locator("#verdict").inner_text()
    assert "accepted" in verdict and "did not trigger: the source did not ask" in verdict
    page.goto(f"{running.url}/console/uploads/{passive_id}?line=9")
    assert page.locator("#verdict").inner_text() == "No line 9 in passive.jsonl."
    time.sleep(0.5)  # the outputs are written with the final status; let the sink flush
    assert _triggers_of(running, passive_id) == []
    assert len(_triggers_of(running, ticked_id)) == 3


def test_nothing_is_shown_without_sign_in(running: Running) -> None:
    with httpx.Client(base_url=running.url, follow_redirects=False) as client:
        for path in ("/console/", "/console/feed", "/console/import", "/console/uploads/x"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"
        assert client.get("/console/events").status_code == 401
        assert client.get("/").headers["location"] == "/console/"


def _cookie(running: Running, account: str, age: float) -> str:
    key = (running.data / "console.key").read_text().strip()

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    serializer = URLSafeTimedSerializer(key, salt="tidegate-console-session", signer=Old)
    return str(serializer.dumps({"a": account, "c": "x"}))


def test_a_forged_or_expired_cookie_is_refused(running: Running) -> None:
    forged = URLSafeTimedSerializer("not the key", salt="tidegate-console-session").dumps(
        {"a": "alice", "c": "x"}
    )
    for value in (forged, _cookie(running, "alice", 9 * 3600), "garbage"):
        with httpx.Client(base_url=running.url, cookies={"tidegate_console": str(value)}) as c:
            assert c.get("/console/", follow_redirects=False).status_code == 303
            assert c.get("/console/events").status_code == 401
    fresh = _cookie(running, "alice", 60)
    with httpx.Client(base_url=running.url, cookies={"tidegate_console": fresh}) as c:
        assert c.get("/console/").status_code == 200  # the same cookie, in date, is taken


def test_another_accounts_upload_is_not_found(page: Any, running: Running) -> None:
    sftp_put(running, "bob", "bobs-file.jsonl", zeta_lines(2))
    sign_in(page, running, "bob")
    playwright_api.expect(row(page, "bobs-file.jsonl").locator("td.status")).to_have_text(
        "success", timeout=10_000
    )
    bobs = _upload_id(page, "bobs-file.jsonl")
    page.context.clear_cookies()
    sign_in(page, running, "alice")
    assert row(page, "bobs-file.jsonl").count() == 0
    answer = page.goto(f"{running.url}/console/uploads/{bobs}")
    assert answer is not None and answer.status == 404
    answer = page.goto(f"{running.url}/console/uploads/{bobs}/feedback")
    assert answer is not None and answer.status == 404


def test_the_operator_sees_every_account(page: Any, running: Running) -> None:
    page.goto(f"{running.url}/console/signin")
    page.fill("#operator_token", running.operator_token)
    page.click("#signin-operator")
    page.wait_for_url(f"{running.url}/console/")
    text = page.locator("#rows").inner_text()
    assert "alice" in text and "bob" in text
    page.goto(f"{running.url}/console/feed")
    assert page.locator("#totals").inner_text().count("uploads finished") == 1
    shot(page, "feed")


def test_a_hostile_file_name_is_shown_escaped(page: Any, running: Running) -> None:
    name = "<img src=x onerror=alert(1)>.jsonl"
    sign_in(page, running)
    sftp_put(running, "alice", name, zeta_lines(2))
    playwright_api.expect(row(page, name).locator("td.status")).to_have_text(
        "success", timeout=10_000
    )
    assert page.locator("#rows img").count() == 0
    shot(page, "history")  # by now the account's history holds the other tests' uploads too
    page.click(f"#row-{_upload_id(page, name)} td.name a")
    assert page.locator("#upload-name").inner_text() == name
    assert page.locator("main img").count() == 0
    page.goto(f"{running.url}/console/signin")
    shot(page, "signin")


def test_a_form_without_the_csrf_token_is_refused(running: Running) -> None:
    with httpx.Client(base_url=running.url) as client:
        client.post(
            "/console/signin",
            data={"account": "alice", "api_key": running.accounts["alice"].api_key},
        )
        answer = client.post("/console/import/submit", data={"token": "abc", "trigger": "on"})
        assert answer.status_code == 403
        answer = client.post(
            "/console/signin",
            data={"account": "alice", "api_key": running.accounts["alice"].api_key},
            headers={"Origin": "https://evil.example"},
        )
        assert answer.status_code == 403
