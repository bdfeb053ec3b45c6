"""Tests of identities, keys and CSRs."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otsentry.common.errors import PkiError
from otsentry.common.pki import (
    Identity, build_csr, generate_key, identity_of, load_csr, load_private_key, write_private_key,
)


class TestIdentity:
    def test_forms(self) -> None:
        """Agent, analyst and collector identities have distinct SPIFFE forms."""
        a = Identity.agent("plant-1", "pump.house")
        assert a.uri == "spiffe://otsentry/site/plant-1/agent/pump.house"
        assert a.short == "site/plant-1/agent/pump.house"
        assert Identity.parse(a.uri) == a == Identity.parse(a.short)
        assert Identity.parse("analyst/eve") == Identity("analyst", "eve")
        assert Identity.parse("analyst/eve").kind != Identity.parse("site/eve/agent/eve").kind

    @pytest.mark.parametrize("bad", [
        "spiffe://other/site/s/agent/a", "site/s/agent/", "site/s/agent/a/b", "analyst/../x",
        "site/s p/agent/a", "spiffe://otsentry/analyst/" + "x" * 65,
    ])
    def test_refused(self, bad: str) -> None:
        """Anything but the three otsentry forms is refused."""
        with pytest.raises(PkiError):
            Identity.parse(bad)

    def test_invalid_construction(self) -> None:
        """An identity with an invalid name cannot be built."""
        with pytest.raises(PkiError):
            Identity.agent("a/b", "c")

    @given(st.text(max_size=80))
    def test_parse_only_pki_error(self, text: str) -> None:
        """Arbitrary text parses to an identity that round-trips, or raises PkiError."""
        try:
            ident = Identity.parse(text)
        except PkiError:
            return
        assert Identity.parse(ident.uri) == ident


class TestKeys:
    def test_mode_0600(self, tmp_path) -> None:
        """Keys are written with mode 0600 and never overwritten."""
        path = tmp_path / "k.key"
        old = os.umask(0)
        try:
            write_private_key(path, generate_key())
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(PkiError, match="never overwritten"):
            write_private_key(path, generate_key())
        load_private_key(path)

    def test_loose_mode_refused(self, tmp_path) -> None:
        """A key readable by others is refused with the chmod that fixes it."""
        path = tmp_path / "k.key"
        write_private_key(path, generate_key())
        path.chmod(0o644)
        with pytest.raises(PkiError, match="chmod 600"):
            load_private_key(path)


class TestCsr:
    def test_round_trip(self, tmp_path) -> None:
        """A CSR carries the identity as its one URI SAN."""
        csr = build_csr(generate_key(), Identity.agent("s", "a"))
        path = tmp_path / "a.csr"
        path.write_bytes(csr.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                     fromlist=["Encoding"]).Encoding.PEM))
        assert identity_of(load_csr(path)) == Identity.agent("s", "a")

    def test_garbage(self, tmp_path) -> None:
        """A file that is no CSR is refused by name."""
        path = tmp_path / "x.csr"
        path.write_text("hello")
        with pytest.raises(PkiError, match="x.csr"):
            load_csr(path)
