"""The user register map: 0-based addresses and 1-based refs, overrides, errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otsentry.agent.inventory import Inventory, UserMap, load_user_map, parse_ref, parse_user_map
from otsentry.agent.testing import Conversation
from otsentry.common.errors import ConfigError

from .test_inventory import _frames

MAP = """\
# tags of the pump station
[[register]]
server = "10.0.0.2"
unit_id = 1
ref = "400001"
name = "Tank level"
type = "float32"
word_order = "little"
eng_unit = "m"

[[register]]
table = "holding_registers"
address = 2
name = "Pump speed"
scale = 0.1
eng_unit = "rpm"

[[register]]
ref = "00001"
name = "Pump running"
"""


class TestRefs:
    def test_modicon_refs(self) -> None:
        """Refs are 1-based with the table in the first digit; 5 and 6 digit forms agree."""
        assert parse_ref("400001") == parse_ref("40001") == ("holding_registers", 0)
        assert parse_ref("300010") == ("input_registers", 9)
        assert parse_ref("00001") == ("coils", 0) and parse_ref("165536") == ("discrete_inputs", 65535)
        assert parse_ref("200001") is None and parse_ref("400000") is None
        assert parse_ref("4x0001") is None and parse_ref("4001") is None


class TestParse:
    def test_entries(self) -> None:
        """Both address forms land on the same 0-based wire address."""
        m = parse_user_map(MAP, "tags.toml")
        level = m.lookup("10.0.0.2", 1, "holding_registers", 0)
        assert level is not None and level.name == "Tank level" and level.word_order == "little"
        assert m.lookup("10.0.0.9", 4, "holding_registers", 2).name == "Pump speed"
        assert m.lookup("10.0.0.9", 4, "coils", 0).name == "Pump running"
        assert m.lookup("10.0.0.2", 2, "holding_registers", 0) is None

    @pytest.mark.parametrize(("text", "key", "line"), [
        ('[[register]]\nref = "400001"\ntype = "float64"\n', "register[0].type", 1),
        ('[[register]]\nref = "400001"\n\n[[register]]\ntable = "holding"\naddress = 1\n',
         "register[1].table", 4),
        ('[[register]]\ntable = "coils"\naddress = 70000\n', "register[0].address", 1),
        ('[[register]]\nref = 400001\n', "register[0].ref", 1),
        ('[[register]]\nref = "400001"\naddress = 1\n', "register[0].address", 1),
        ('[[register]]\nref = "400001"\ncolour = "red"\n', "register[0].colour", 1),
        ('[[register]]\nref = "000001"\ntype = "u16"\n', "register[0].type", 1),
        ('[tags]\nx = 1\n', "tags", 1),
        ('[[register]]\nref = "400001"\nscale = "ten"\n', "register[0].scale", 1),
    ])
    def test_errors_name_file_key_and_line(self, text: str, key: str, line: int) -> None:
        """Every mistake is a ConfigError with the file, the key, what was expected and the line."""
        with pytest.raises(ConfigError) as err:
            parse_user_map(text, "tags.toml")
        assert (err.value.path, err.value.key, err.value.line) == ("tags.toml", key, line)
        assert err.value.expected and str(err.value).startswith(f"tags.toml:{line}: key '{key}'")

    def test_bad_toml_has_line(self) -> None:
        """TOML syntax errors keep tomllib's line number."""
        with pytest.raises(ConfigError) as err:
            parse_user_map('[[register]]\nref = "400001"\nname = \n', "tags.toml")
        assert err.value.line == 3 and "valid TOML" in err.value.expected

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        with pytest.raises(ConfigError, match="nope.toml"):
            load_user_map(tmp_path / "nope.toml")

    @given(st.text(max_size=300))
    def test_any_text_is_a_map_or_a_config_error(self, text: str) -> None:
        """Arbitrary text parses to a UserMap or raises ConfigError, nothing else."""
        try:
            assert isinstance(parse_user_map(text), UserMap)
        except ConfigError:
            pass

    @given(st.lists(st.lists(st.tuples(
        st.sampled_from(["ref", "table", "address", "type", "word_order", "scale", "unit_id",
                         "server", "name", "bogus"]),
        st.one_of(st.integers(-5, 70000), st.text(max_size=8), st.floats(allow_nan=False),
                  st.booleans(), st.sampled_from(["400001", "coils", "float32", "little",
                                                  "holding_registers", "30001"]))),
        max_size=6), max_size=4))
    def test_any_entries_are_checked(self, entries: list[list[tuple[str, object]]]) -> None:
        """Any [[register]] entries built from real keys and odd values parse or raise ConfigError."""
        def toml(v: object) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return repr(v) if not isinstance(v, float) or v == v and abs(v) != float("inf") else "0"
        text = "".join("[[register]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in dict(e).items())
                       for e in entries)
        try:
            m = parse_user_map(text, "x.toml")
            assert len(m) == len(entries)
        except ConfigError as exc:
            assert exc.path == "x.toml" and exc.key.startswith(("register", ""))


def test_user_map_overrides_guess(tmp_path: Path) -> None:
    """Registers named in the map take its type, word order, name, unit and scaling."""
    path = tmp_path / "tags.toml"
    path.write_text(MAP)
    conv = Conversation(unit=1)
    # 12.5 as float32 little (CDAB): words 0x0000, 0x4148; then a speed of 1500 -> 150.0 rpm
    pairs = [conv.exchange(3, address=0, registers=(0x0000, 0x4148, 1500))]
    inv = Inventory(user_map=path)
    from .conftest import feed_frames

    feed_frames(inv, _frames(pairs))
    [table] = inv.to_dict()["assets"][1]["devices"][0]["tables"].values()
    level, speed = table["registers"]
    assert (level["type"], level["word_order"], level["value"]) == ("float32", "little", 12.5)
    assert level["name"] == "Tank level" and level["eng_unit"] == "m" and level["source"] == "user"
    assert speed["name"] == "Pump speed" and speed["scaled"] == pytest.approx(150.0)
