"""The dashboard in Debian's chromium against a collector fed by a real agent."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, expect
from sqlalchemy import func, select

from otsentry.collector.store import Store, read
from otsentry.collector.store import _schema as S
from otsentry.common.finding import AssetRef, Evidence, Finding, Flow, Severity
from otsentry.common.pki import Identity
from otsentry.v1 import convert, finding_pb2, ingest_pb2
from tests.browser.conftest import Dashboard, screenshot
from tests.conftest import SHARED_PCAPS

#: pcap file magics: microsecond and nanosecond, both byte orders.
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
PCAP_SLICE = (SHARED_PCAPS / "device-id-fc43.pcap").read_bytes()


def _finding(fid: str, kind: str, severity: Severity, technique: str, summary: str) -> Finding:
    now = time.time_ns()
    return Finding(id=fid, revision=1, kind=kind, severity=severity, techniques=(technique,),
                   first_seen_ns=now, last_seen_ns=now, count=1,
                   assets=(AssetRef(ip="10.9.9.66", role="client"),
                           AssetRef(ip="10.9.9.5", role="server")),
                   summary=summary,
                   evidence=Evidence(flow=Flow("10.9.9.66", 40000, "10.9.9.5", 502), unit=1,
                                     function_code=6, addresses=(40,), values=(9999,),
                                     pcap=PCAP_SLICE if severity >= Severity.MEDIUM else b""))


def _batch(ident: Identity, epoch: int, findings: list[Finding]) -> ingest_pb2.Batch:
    return ingest_pb2.Batch(agent_id=ident.short, epoch=epoch, first_seq=1, messages=[
        ingest_pb2.Envelope(finding=convert.finding_to_proto(f)) for f in findings])


def _count(dashboard: Dashboard, *where: object) -> int:
    store = Store(dashboard.db_url)
    try:
        with read(store.engine) as conn:
            return conn.execute(select(func.count()).select_from(S.findings).where(*where)).scalar_one()
    finally:
        store.close()


def _newest(dashboard: Dashboard) -> int:
    store = Store(dashboard.db_url)
    try:
        with read(store.engine) as conn:
            return conn.execute(select(func.max(S.findings.c.first_seen_ns))).scalar_one()
    finally:
        store.close()


class TestLogin:
    """Nothing is served without an analyst's certificate or token."""

    def test_anonymous_gets_the_login_page(self, dashboard: Dashboard, browser: Browser) -> None:
        """Pages answer 401 with the login form; the event stream and static files 401 too."""
        ctx = browser.new_context(ignore_https_errors=True)
        page = ctx.new_page()
        resp = page.goto(dashboard.url + "/findings")
        assert resp is not None and resp.status == 401
        expect(page.locator("#token")).to_be_visible()
        for path in ("/", "/live/findings?after=0", "/static/app.css", "/findings/1/pcap",
                     "/inventory/plant1", "/inventory/plant1/asset/1"):
            assert ctx.request.get(dashboard.url + path).status == 401, path
        ctx.close()

    def test_agent_certificate_is_refused(self, dashboard: Dashboard, browser: Browser) -> None:
        """An agent's certificate gets 403 with the reason, even with a valid token."""
        tls = dashboard.plant.root / "state" / "tls"
        _, _, token = dashboard.analyst("tokenholder")
        ctx = browser.new_context(ignore_https_errors=True, client_certificates=[{
            "origin": dashboard.url, "certPath": str(tls / "agent.crt"),
            "keyPath": str(tls / "agent.key")}])
        resp = ctx.request.get(dashboard.url + "/", headers={"authorization": f"Bearer {token}"})
        assert resp.status == 403
        assert "site/plant1/agent/a1" in resp.text() and "analyst certificate" in resp.text()
        ctx.close()

    def test_analyst_certificate_lets_in(self, dashboard: Dashboard, browser: Browser) -> None:
        """An analyst's client certificate opens the overview with no token."""
        key, cert, _ = dashboard.analyst("certana")
        ctx = browser.new_context(ignore_https_errors=True, client_certificates=[{
            "origin": dashboard.url, "certPath": str(cert), "keyPath": str(key)}])
        page = ctx.new_page()
        resp = page.goto(dashboard.url + "/")
        assert resp is not None and resp.status == 200
        expect(page.locator(".who")).to_contain_text("certana (certificate)")
        ctx.close()

    def test_revoked_analyst_is_refused(self, dashboard: Dashboard, browser: Browser) -> None:
        """Revoking an analyst ends both their certificate and their tokens."""
        key, cert, token = dashboard.analyst("leaver")
        ctx = browser.new_context(ignore_https_errors=True)
        assert ctx.request.get(dashboard.url + "/", headers={
            "authorization": f"Bearer {token}"}).status == 200
        dashboard.ca.revoke("analyst/leaver", "left the company")
        resp = ctx.request.get(dashboard.url + "/", headers={"authorization": f"Bearer {token}"})
        assert resp.status == 401 and "revoked" in resp.text()
        assert ctx.request.get(dashboard.url + "/", headers={
            "authorization": f"Bearer {token[:-4]}AAAA"}).status == 401
        ctx.close()
        ctx = browser.new_context(ignore_https_errors=True, client_certificates=[{
            "origin": dashboard.url, "certPath": str(cert), "keyPath": str(key)}])
        resp = ctx.request.get(dashboard.url + "/")
        assert resp.status == 403 and "revoked" in resp.text()
        ctx.close()


class TestPages:
    """The pages show what the agent delivered."""

    def test_overview(self, dashboard: Dashboard, analyst_page: BrowserContext) -> None:
        """Agents with health and counters, the open incident, the chart and the heat map."""
        page = analyst_page.pages[0]
        agents = page.locator("section", has_text="Sites and agents").locator("tbody tr")
        expect(agents.first).to_contain_text("plant1")
        expect(agents.first).to_contain_text("a1")
        expect(agents.first.locator(".health")).to_have_text(re.compile("OK|LATE"))
        expect(page.locator("section", has_text="Open incidents")).to_contain_text("#1")
        assert page.locator("svg.chart rect").count() > 0
        totals = sum(int(t) for t in page.locator("svg.chart text.total").all_text_contents())
        # the chart spans the newest day of capture time (the two sites' captures are years apart)
        newest = _newest(dashboard) - 86_400 * 10**9
        assert totals == _count(dashboard, S.findings.c.first_seen_ns >= newest) > 0
        tiles = page.locator(".tile:not(.heat-0)")
        assert tiles.count() > 0
        screenshot(page, "overview")

    def test_findings_filters(self, dashboard: Dashboard, analyst_page: BrowserContext) -> None:
        """Severity, kind and technique filters show exactly the matching findings."""
        page = analyst_page.pages[0]
        page.goto(dashboard.url + "/findings")
        page.select_option("select[name=min_severity]", "medium")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"min_severity=medium"))
        rows = page.locator("table.findings tbody tr")
        want = _count(dashboard, S.findings.c.severity >= int(Severity.MEDIUM))
        expect(rows).to_have_count(min(want, 200))
        assert set(rows.locator(".sev").all_inner_texts()) <= {"MEDIUM", "HIGH", "CRITICAL"}
        page.select_option("select[name=kind]", "baseline.new-function")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"kind=baseline.new-function"))
        want = _count(dashboard, S.findings.c.severity >= int(Severity.MEDIUM),
                      S.findings.c.kind == "baseline.new-function")
        assert want > 0
        expect(rows).to_have_count(want)
        assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"baseline.new-function"}
        page.goto(dashboard.url + "/findings?technique=T9999")
        expect(rows).to_have_count(0)
        resp = page.goto(dashboard.url + "/findings?min_severity=urgent")
        assert resp is not None and resp.status == 400
        expect(page.locator(".error")).to_contain_text("unknown severity 'urgent'")
        screenshot(page, "findings-filtered")

    def test_finding_detail_and_pcap(self, dashboard: Dashboard,
                                     analyst_page: BrowserContext) -> None:
        """A medium finding shows its evidence and assets; its pcap slice downloads intact."""
        store = Store(dashboard.db_url)
        with read(store.engine) as conn:
            rid, body = conn.execute(select(S.findings.c.id, S.findings.c.body).where(
                S.findings.c.severity >= int(Severity.MEDIUM)).order_by(S.findings.c.id)).first()
        store.close()
        stored = convert.finding_from_proto(convert.parse(finding_pb2.Finding, body))
        page = analyst_page.pages[0]
        page.goto(f"{dashboard.url}/findings/{rid}")
        expect(page.locator("h1")).to_contain_text(stored.kind)
        expect(page.locator("dl.facts").nth(1)).to_contain_text(stored.evidence.flow.server_ip)
        expect(page.locator("table")).to_contain_text(stored.assets[0].ip)
        with page.expect_download() as dl:
            page.click("text=Download pcap slice")
        got = Path(dl.value.path()).read_bytes()
        assert got == stored.evidence.pcap and got[:4] in PCAP_MAGICS
        screenshot(page, "finding")

    def test_incident_and_inventory(self, dashboard: Dashboard,
                                    analyst_page: BrowserContext) -> None:
        """The incident shows members, timeline and upstream status; the inventory its assets."""
        page = analyst_page.pages[0]
        page.goto(dashboard.url + "/incidents")
        page.click("a[href='/incidents/1']")
        # no [[upstream]] here and nobody declared it: said in words, not as a raw value
        expect(page.locator("dd.upstream")).to_have_text("not declared (no report due)")
        assert page.locator("table").first.locator("tbody tr").count() >= 2
        screenshot(page, "incident")
        page.goto(dashboard.url + "/inventory")
        page.click("a[href='/inventory/plant1']")
        inv = page.locator("table.inventory")
        expect(inv).to_contain_text("192.168.0.20")
        expect(inv.locator("tr", has_text="192.168.0.20")).to_contain_text("gateway")
        for unit in ("1", "2", "3", "7"):
            expect(inv.locator("tr", has_text="192.168.0.20").locator(".unit", has_text=unit)
                   ).to_have_count(1)
        expect(page.locator("table").nth(1)).to_contain_text("role-change")
        screenshot(page, "inventory")


class TestLive:
    """A finding ingested while the page is open appears without a reload."""

    def test_new_finding_appears(self, dashboard: Dashboard, analyst_page: BrowserContext) -> None:
        """Matching pages get the new rows; a page filtered to another site does not."""
        page = analyst_page.pages[0]
        page.goto(dashboard.url + "/findings?min_severity=high")
        other = analyst_page.new_page()
        other.goto(dashboard.url + "/findings?site=plant1")
        for p in (page, other):
            expect(p.locator(".live-status")).to_contain_text("Live updates: on")
            p.evaluate("window.notReloaded = true")
        key, cert = dashboard.agent_creds("plant2", "b1")
        dashboard.ship(key, cert, _batch(Identity.agent("plant2", "b1"), 1, [
            _finding("live-scan", "recon.scan", Severity.LOW, "T0846", "Live scan from 10.9.9.66"),
            _finding("live-write", "policy.write-not-allowed", Severity.HIGH, "T0855",
                     "Live write to register 40 from 10.9.9.66")]))
        row = page.locator("table.findings tbody tr", has_text="Live write to register 40")
        expect(row).to_be_visible(timeout=10_000)
        expect(page.locator("table.findings tbody tr").first).to_contain_text("Live write")
        expect(page.locator("table.findings")).not_to_contain_text("Live scan")
        assert page.evaluate("window.notReloaded") is True
        screenshot(page, "findings-live")
        time.sleep(1.5)  # the other page's stream has had the same entries by now
        expect(other.locator("table.findings")).not_to_contain_text("Live write")
        assert other.evaluate("window.notReloaded") is True
        other.close()
