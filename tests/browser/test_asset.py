"""The asset page in Debian's chromium: the register map and polling cycles the agent reported."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from otsentry.collector.store import Store, read
from otsentry.collector.store import _schema as S
from otsentry.common.pki import Identity
from otsentry.v1 import common_pb2, ingest_pb2, inventory_pb2
from tests.browser.conftest import SAMPLE_SITE, Dashboard, screenshot

#: The gateway of the shared capture and what it showed (``otsentry-agent inventory``):
#: unit 7 answers holding register 4 (Modicon 400005) with 1000 throughout, and
#: 192.168.0.21 polls unit 1's input registers 0-1 (FC4) every few seconds.
GATEWAY, MASTER = "192.168.0.20", "192.168.0.21"
OLD_SITE = "plant3"


def _stored_counts(dashboard: Dashboard, ip: str) -> tuple[int, int, int]:
    """(registers, ranges, cycles) over the asset's units, read from the store's raw rows."""
    store = Store(dashboard.db_url)
    try:
        with read(store.engine) as conn:
            rows = conn.execute(select(S.assets.c.attributes).where(
                S.assets.c.site == "plant1", S.assets.c.ip == ip,
                S.assets.c.unit != S.NONE)).scalars().all()
    finally:
        store.close()
    attrs = [{k: v for k, (v, _) in json.loads(r).items()} for r in rows]
    return tuple(sum(len(json.loads(a.get(k, "[]"))) for a in attrs)  # type: ignore[return-value]
                 for k in ("registers", "ranges", "cycles"))


def _delta(ip: str, unit: int | None, **attributes: str) -> ingest_pb2.Envelope:
    now = time.time_ns()
    return ingest_pb2.Envelope(inventory=inventory_pb2.InventoryDelta(
        asset=common_pb2.AssetKey(ip=ip, mac="02:00:00:00:00:01"), unit=unit,
        change=inventory_pb2.CHANGE_KIND_ADDED, revision=1, attributes=attributes,
        times=common_pb2.Times(capture_ns=now, agent_ns=now)))


@pytest.fixture(name="old_site", scope="module")
def _old_site(dashboard: Dashboard) -> str:
    """A site whose agents sent no snapshot (10.9.8.7) or broken ones (10.9.8.8)."""
    key, cert = dashboard.agent_creds(OLD_SITE, "old1")
    dashboard.ship(key, cert, ingest_pb2.Batch(
        agent_id=Identity.agent(OLD_SITE, "old1").short, epoch=1, first_seq=1, messages=[
            _delta("10.9.8.7", None, role="server"), _delta("10.9.8.7", 1, fc_seen="3"),
            _delta("10.9.8.8", None, role="server", tls="{not json", roles="7"),
            _delta("10.9.8.8", 1, registers="not json", cycles='{"a": 1}',
                   ranges='[1, {"table": "coils", "address": "x"}]', functions='{"3": "x"}',
                   latency_ms='"fast"', clients="null", truncated='{"registers": 7}')]))
    return OLD_SITE


class TestAssetPage:
    """The inventory links each asset to a page with its facts, register map and cycles."""

    def test_inventory_counts_link_to_the_asset(self, dashboard: Dashboard,
                                                 analyst_page: BrowserContext) -> None:
        """The inventory shows the reported counts; following them opens the asset's page."""
        registers, ranges, cycles = _stored_counts(dashboard, GATEWAY)
        assert registers > 0 and cycles > 0
        page = analyst_page.pages[0]
        page.goto(dashboard.url + "/inventory/plant1")
        row = page.locator("table.inventory tbody tr", has_text=GATEWAY)
        expect(row.locator("a.registers")).to_have_text(f"{registers} registers, {ranges} ranges")
        expect(row.locator("a.cycles")).to_have_text(f"{cycles} cycles")
        expect(row).to_contain_text("MOXA")  # the MAC's vendor
        row.locator("a.cycles").click()
        page.wait_for_url(re.compile(r"/inventory/plant1/asset/\d+$"))
        expect(page.locator("h1")).to_contain_text(GATEWAY)
        expect(page.locator("dl.asset")).to_contain_text("gateway")

    def test_register_map_and_cycles(self, dashboard: Dashboard,
                                     analyst_page: BrowserContext) -> None:
        """A known register shows address, Modicon ref and value; a known poll shows its period."""
        page = analyst_page.pages[0]
        page.goto(dashboard.url + "/inventory/plant1")
        page.locator("table.inventory tbody tr", has_text=GATEWAY).locator("a.registers").click()
        page.wait_for_url(re.compile(r"/asset/\d+$"))
        for unit in (1, 2, 3, 7):
            expect(page.locator(f"#unit-{unit} h2")).to_have_text(f"Unit {unit}")
        unit7 = page.locator("#unit-7")
        reg = unit7.locator("table.registers[data-table=holding_registers] tbody tr").filter(
            has=page.locator("td:first-child", has_text=re.compile(r"^4$")))
        expect(reg.locator("td")).to_have_text(["4", "400005", "u16", "1000", "1000", "1000", "0"])
        expect(unit7.locator("table.functions")).to_contain_text("read_holding_registers")
        poll = page.locator("#unit-1 table.cycles tbody tr").filter(
            has=page.locator("td:nth-child(3)", has_text=re.compile(r"^0–1$")))
        expect(poll).to_have_count(1)
        cells = poll.locator("td").all_inner_texts()
        assert cells[:4] == [MASTER, "4 read_input_registers", "0–1", "300001"], cells
        assert float(cells[4]) > 0 and int(cells[6]) > 2, cells
        expect(page.locator("#unit-1 table.ranges")).to_contain_text(MASTER)
        expect(page.locator("#unit-1 dl.facts")).to_contain_text("median")
        screenshot(page, "asset")

    def test_device_identification(self, dashboard: Dashboard,
                                   analyst_page: BrowserContext) -> None:
        """The sample plant's gateway shows what it answered to Read Device Identification."""
        page = analyst_page.pages[0]
        page.goto(f"{dashboard.url}/inventory/{SAMPLE_SITE}")
        row = page.locator("table.inventory tbody tr", has_text="10.20.2.21")
        expect(row).to_contain_text("MGate MB3180")
        row.locator("a.registers").click()
        page.wait_for_url(re.compile(r"/asset/\d+$"))
        expect(page.locator("dl.asset")).to_contain_text("v2.2")
        expect(page.locator("#unit-1 dl.facts .unit")).to_have_text(
            ["VendorName: Moxa", "ProductCode: MGate MB3180", "MajorMinorRevision: v2.2"])
        expect(page.locator("#unit-1 table.registers")).to_have_count(3)
        screenshot(page, "asset-device-id")

    def test_older_or_broken_snapshots(self, dashboard: Dashboard, old_site: str,
                                       analyst_page: BrowserContext) -> None:
        """No snapshot reads "not reported by the agent"; malformed JSON blanks its section only."""
        page = analyst_page.pages[0]
        page.goto(f"{dashboard.url}/inventory/{old_site}")
        old = page.locator("table.inventory tbody tr", has_text="10.9.8.7")
        expect(old.locator("a.registers")).to_have_text("not reported by the agent")
        old.locator("a.registers").click()
        page.wait_for_url(re.compile(r"/asset/\d+$"))
        expect(page.locator("#unit-1")).to_contain_text("not reported by the agent")
        expect(page.locator("#unit-1 table")).to_have_count(0)
        page.goto(f"{dashboard.url}/inventory/{old_site}")
        resp_wait = page.locator("table.inventory tbody tr", has_text="10.9.8.8")
        expect(resp_wait.locator("a.registers")).to_have_text("7 registers, 1 range")
        with page.expect_response(re.compile(r"/asset/\d+$")) as resp:
            resp_wait.locator("a.registers").click()
        assert resp.value.status == 200
        unit = page.locator("#unit-1")
        expect(unit.locator(".warn")).to_have_text(
            "List truncated: 7 more registers not sent by the agent.")
        expect(unit.locator("table.ranges tbody tr")).to_have_count(1)
        expect(unit.locator("table.ranges tbody tr td").nth(2)).to_have_text("-")
        expect(unit.locator("table.cycles, table.registers")).to_have_count(0)
        expect(unit.locator("table.functions tbody")).to_have_text("none")

    def test_unknown_asset_is_404(self, dashboard: Dashboard, old_site: str,
                                  analyst_page: BrowserContext) -> None:
        """An id that is not an asset of the site in the path is not found, not another site's."""
        page = analyst_page.pages[0]
        page.goto(f"{dashboard.url}/inventory/{old_site}")
        href = page.locator("table.inventory tbody tr a.registers").first.get_attribute("href")
        assert href is not None
        aid = href.rsplit("/", 1)[1]
        resp = page.goto(f"{dashboard.url}/inventory/plant1/asset/{aid}")
        assert resp is not None and resp.status == 404
        resp = page.goto(f"{dashboard.url}/inventory/plant1/asset/999999")
        assert resp is not None and resp.status == 404
