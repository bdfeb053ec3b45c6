"""A real collector with its dashboard, fed by a real agent replaying a shared capture.

``plant`` starts ``otsentry-collector serve`` with ``[web] listen`` set and
``otsentry-agent run --pcap`` on the fault tests' capture (hundreds of findings,
an inventory, status reports), waits until the agent has delivered everything
and exits, then replays the sample plant through a second agent under the site
``sample`` (device identification and user-visible names); the browser tests
then drive Debian's chromium against it.
Screenshots go to ``$OTSENTRY_ARTIFACTS`` (default ``test-artifacts/browser``, git-ignored).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from otsentry.collector.pki import CertificateAuthority
from otsentry.collector.web import issue_token
from otsentry.common.pki import Identity, build_csr, generate_key, write_private_key
from otsentry.common.tls import channel_credentials
from otsentry.v1 import ingest_pb2, ingest_pb2_grpc
from tests.conftest import REPO
from tests.fault.harness import NAME, SITE, Plant, free_port, wait_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("OTSENTRY_ARTIFACTS") or REPO / "test-artifacts" / "browser")
_NAMES = itertools.count(1)
#: A second site: the sample plant (device identification, bigger register maps), own agent.
SAMPLE_SITE, SAMPLE_PCAP = "sample", REPO / "samples" / "plant-small.pcap"


@dataclass
class Dashboard:
    """The running plant and what a test needs to reach its dashboard."""

    plant: Plant
    url: str
    ca: CertificateAuthority
    db_url: str

    def analyst(self, name: str) -> tuple[Path, Path, str]:
        """(key, certificate, login token) of a new analyst."""
        key, cert = self.ca.issue_analyst(name, self.plant.root / "analysts")
        return key, cert, issue_token(self.ca.dir, cert)[0]

    def agent_creds(self, site: str, name: str) -> tuple[Path, Path]:
        """(key, certificate) of a further agent, enrolled as an admin would."""
        d = self.plant.root / "agents" / f"{site}-{name}"
        d.mkdir(parents=True)
        key = generate_key()
        write_private_key(d / "agent.key", key)
        cert = self.ca.sign_csr(build_csr(key, Identity.agent(site, name)))
        (d / "agent.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return d / "agent.key", d / "agent.crt"

    def replay(self, site: str, name: str, pcap: Path) -> None:
        """Replay ``pcap`` through a further real agent of ``site`` into the same collector.

        The agent gets the plant's test settings with its own identity, state and
        credentials; this waits until it has delivered everything and exited.
        """
        key, cert = self.agent_creds(site, name)
        config = self.plant.root / "agent.toml"
        text = config.read_text()
        for old, new in ((f'site = "{SITE}"', f'site = "{site}"'),
                         (f'name = "{NAME}"', f'name = "{name}"'),
                         ('state_dir = "state"', f'state_dir = "{key.parent / "state"}"'),
                         ("[collector]\n", (f'[collector]\nca = "{self.ca.ca_cert_path}"\n'
                                           f'cert = "{cert}"\nkey = "{key}"\n'))):
            assert old in text, f"{config} has no {old!r}"
            text = text.replace(old, new, 1)
        (key.parent / "agent.toml").write_text(text)
        self.plant.agent = self.plant._spawn("agent", [
            "otsentry.agent.cli", "--log-format", "json", "run", "--config",
            str(key.parent / "agent.toml"), "--pcap", str(pcap)])
        self.plant.wait_agent(60)

    def ship(self, key: Path, cert: Path, batch: ingest_pb2.Batch) -> None:
        """Deliver one batch over mTLS with an agent's key and certificate; wait for its ack.

        A blocking channel: Playwright's sync API owns this thread's event loop.
        """
        creds = channel_credentials(self.ca.ca_cert_path, cert, key)
        with grpc.secure_channel(f"localhost:{self.plant.port}", creds) as ch:
            acks = list(ingest_pb2_grpc.IngestStub(ch).Stream(iter([batch]), timeout=20))
        assert acks and acks[-1].seq == batch.first_seq + len(batch.messages) - 1


@pytest.fixture(name="dashboard", scope="package")
def _dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    plant = Plant(tmp_path_factory.mktemp("plant"))
    web_port = free_port()
    with (plant.root / "collector.toml").open("a") as f:
        f.write(f'[web]\nlisten = "127.0.0.1:{web_port}"\n')
    try:
        plant.start_collector()
        wait_port(web_port)
        plant.start_agent()
        plant.wait_agent(60)
        dashboard = Dashboard(plant, f"https://localhost:{web_port}",
                              CertificateAuthority(plant.root / "pki"),
                              f"sqlite:///{plant.root / 'store.sqlite'}")
        dashboard.replay(SAMPLE_SITE, "s1", SAMPLE_PCAP)
        yield dashboard
    finally:
        plant.stop()


@pytest.fixture(name="browser", scope="package")
def _browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./dev test does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(name="analyst_page")
def _analyst_page(dashboard: Dashboard, browser: Browser) -> Iterator[BrowserContext]:
    """A browser context logged in with a token through the login page."""
    _, _, token = dashboard.analyst(f"ana{next(_NAMES)}")
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    page.goto(dashboard.url + "/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(dashboard.url + "/")
    yield ctx
    ctx.close()


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
