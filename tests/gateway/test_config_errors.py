"""A config file the gateway (or an edge adapter) refuses says why in lines a person reads: the
file; a syntax error's line and column; a refused setting by the id of its `[[networks]]` or
`[[categories]]` block, its path inside the block and the value given, never a secret's value;
an unknown key with the setting it was probably meant to be (adapters/config_errors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config_errors import ConfigError
from adapters.remote_config import load_adapter_config
from gateway.cli import main
from gateway.settings import load_settings

CONFIG = """\
[server]
port = 8080

[[networks]]
id = "governance"
name = "Governance network"
cidrs = ["127.1.0.0/16"]

[[networks]]
id = "police"
name = "Police network"
cidrs = ["127.2.0.0/16"]
  [networks.sharing]
  max_width = 1280
  [networks.discovery]
  timeout_s = 5.0
  [networks.credentials]
  username = "admin"
  password_env = "CAMGW_POLICE_PASSWORD"

[[categories]]
id = "traffic"
name = "Traffic cameras"
network = "police"

[[categories]]
id = "unclassified"
name = "Unclassified"
"""

SECRET = "hunter2-Secr3t"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "CAMGW_CONFIG", "CAMGW_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, old: str = "", new: str = "") -> Path:
    assert not old or CONFIG.count(old) == 1
    path = tmp_path / "camgw.toml"
    path.write_text(CONFIG.replace(old, new))
    return path


def _refused(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def test_the_shape_used_here_loads(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path))
    assert settings.network_by_id["police"].discovery.timeout_s == 5.0


def test_a_typo_in_the_second_network_names_the_network_and_the_key_meant(tmp_path: Path) -> None:
    path = _config(tmp_path, "  timeout_s = 5.0", "  timeot_s = 5.0")
    assert _refused(path) == [
        f"{path}: network \"police\": discovery: unknown setting 'timeot_s'; "
        "did you mean 'timeout_s'?"
    ]


def test_an_unknown_key_with_nothing_close_is_named_alone(tmp_path: Path) -> None:
    path = _config(tmp_path, "[server]\n", "[server]\ncolour = 'blue'\n")
    assert _refused(path) == [f"{path}: server: unknown setting 'colour'"]


def test_a_misspelt_required_key_is_one_line_not_two(tmp_path: Path) -> None:
    path = _config(tmp_path, 'name = "Police network"', 'nmae = "Police network"')
    assert _refused(path) == [
        f"{path}: network \"police\": unknown setting 'nmae'; did you mean 'name'?"
    ]


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (
            "timeout_s = 5.0",
            "timeout_s = -1",
            'network "police": discovery.timeout_s: Input should be greater than 0 (got -1)',
        ),
        (
            "max_width = 1280",
            'max_width = "wide"',
            'network "police": sharing.max_width: Input should be a valid integer, unable to '
            'parse string as an integer (got "wide")',
        ),
        (
            'cidrs = ["127.2.0.0/16"]',
            'cidrs = ["127.2.0.0/33"]',
            'network "police": cidrs (item 1): Input is not a valid IPv4 network or IPv6 '
            'network (got "127.2.0.0/33")',
        ),
        (
            'cidrs = ["127.2.0.0/16"]',
            "cidrs = []",
            'network "police": cidrs: should have at least 1 item, not 0',
        ),
        (
            'id = "police"',
            'id = "Police"',
            "network \"Police\": id: should be 1 to 32 of a-z, 0-9 and '-', not starting with "
            "'-' (got \"Police\")",
        ),
        (
            'id = "police"',
            "",
            "[[networks]] block 2 (no id): id: required, but not given",
        ),
        (
            'network = "police"',
            "network = 7",
            'category "traffic": network: Input should be a valid string (got 7)',
        ),
        (
            "port = 8080",
            "port = 80800",
            "server.port: Input should be less than or equal to 65535 (got 80800)",
        ),
    ],
)
def test_a_refused_value_names_the_block_by_id_the_path_and_the_value(
    tmp_path: Path, old: str, new: str, line: str
) -> None:
    path = _config(tmp_path, old, new)
    assert _refused(path) == [f"{path}: {line}"]


def test_a_validators_own_message_names_the_value_once(tmp_path: Path) -> None:
    path = _config(tmp_path, "  timeout_s = 5.0", '  static_hosts = ["nvr-3.police.local"]')
    assert _refused(path) == [
        f"{path}: network \"police\": discovery.static_hosts (item 1): 'nvr-3.police.local': "
        "not an address or address:port (names are not resolved; IPv6 with a port is "
        "'[address]:port')"
    ]


def test_every_error_is_reported_one_line_each_in_file_order(tmp_path: Path) -> None:
    path = _config(tmp_path, "port = 8080", "port = -5\nhots = 'x'")
    text = path.read_text().replace('name = "Governance network"', 'name = ""')
    path.write_text(text.replace("timeout_s = 5.0", "timeout_s = 0"))
    assert _refused(path) == [
        f"{path}: server.port: Input should be greater than or equal to 0 (got -5)",
        f"{path}: server: unknown setting 'hots'; did you mean 'host'?",
        f'{path}: network "governance": name: String should have at least 1 character (got "")',
        f'{path}: network "police": discovery.timeout_s: Input should be greater than 0 (got 0)',
    ]


def test_many_errors_are_capped_at_twenty_lines(tmp_path: Path) -> None:
    hosts = ", ".join(f'"host-{i}"' for i in range(25))
    path = _config(tmp_path, "  timeout_s = 5.0", f"  static_hosts = [{hosts}]")
    lines = _refused(path)
    assert len(lines) == 21
    assert lines[0].startswith(f'{path}: network "police": discovery.static_hosts (item 1): ')
    assert lines[19].startswith(f'{path}: network "police": discovery.static_hosts (item 20): ')
    assert lines[20] == "... and 5 more"


def test_a_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = _config(tmp_path, "  timeout_s = 5.0", "  timeout_s = ")
    lineno = CONFIG.splitlines().index("  timeout_s = 5.0") + 1
    assert _refused(path) == [f"{path}, line {lineno}, column 15: Invalid value"]


def test_a_table_declared_twice_is_named_as_the_file_names_it(tmp_path: Path) -> None:
    path = _config(tmp_path, "  [networks.credentials]", "  [networks.sharing]")
    lineno = CONFIG.splitlines().index("  [networks.credentials]") + 1
    assert _refused(path) == [
        f"{path}, line {lineno}, column 20: Cannot declare [networks.sharing] twice"
    ]


def test_a_missing_file_says_how_to_name_another(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "camgw.toml"
    assert _refused(path) == [f"config file {path} not found (set --config or CAMGW_CONFIG)"]


def test_a_config_error_is_a_value_error_for_callers_that_catch_those(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_settings(tmp_path / "none.toml")
    error = ConfigError("first", "second")
    assert error.lines == ["first", "second"] and str(error) == "first\nsecond"


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (  # a password where the env var's name goes
            'password_env = "CAMGW_POLICE_PASSWORD"',
            f'password_env = "CAMGW_POLICE_PASSWORD"\n  password_file = "{SECRET}"',
            'network "police": credentials: give exactly one of password_env and password_file',
        ),
        (  # a password where a table goes
            'cidrs = ["127.1.0.0/16"]',
            f'cidrs = ["127.1.0.0/16"]\ncredentials = "{SECRET}"',
            'network "governance": credentials: should be a table ([section] or '
            "{ key = value, ... })",
        ),
        (  # a misspelt password key: its value is never shown, whatever the key
            'password_env = "CAMGW_POLICE_PASSWORD"',
            f'pasword = "{SECRET}"',
            "network \"police\": credentials: unknown setting 'pasword'; did you mean "
            "'password_env'?",
        ),
        (
            "[server]\n",
            f'[redis]\npassword_env = "{SECRET}!"\n[server]\n',
            "redis.password_env: String should match pattern '^[A-Za-z_][A-Za-z0-9_]{0,127}$'",
        ),
        (
            "[server]\n",
            f'[redis]\nurl = "redis://camgw:{SECRET}@10.1.2.3:6379/0"\n[server]\n',
            "redis.url: must not carry a user or password: set `username` and `password_env` "
            "or `password_file` instead",
        ),
        (
            "  timeout_s = 5.0",
            f'  rtsp_uris = ["rtsp://admin:{SECRET}@127.2.0.9:554/ch1"]',
            "network \"police\": discovery.rtsp_uris (item 1): 'rtsp://127.2.0.9:554/ch1': "
            "carries credentials; give them in the network's credentials, never in a URI",
        ),
        (
            "[server]\n",
            f"[secrets]\nkey_file = {{ path = '{SECRET}' }}\n[server]\n",
            "secrets.key_file: Input is not a valid path",  # a "key": no value shown
        ),
    ],
)
def test_a_secret_is_never_shown(tmp_path: Path, old: str, new: str, line: str) -> None:
    path = _config(tmp_path, old, new)
    lines = _refused(path)
    assert lines == [f"{path}: {line}"]
    assert SECRET not in str(lines)


def test_a_value_from_the_environment_says_so_and_is_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:{SECRET}@127.0.0.1:6379/0")
    path = _config(tmp_path)
    assert _refused(path) == [
        f"{path}: redis.url (from REDIS_URL): must not carry a user or password: set "
        "`username` and `password_env` or `password_file` instead"
    ]


def test_the_cli_prints_the_lines_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "  timeout_s = 5.0", "  timeot_s = 5.0")
    assert main(["--config", str(path), "token", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("camgw: bad configuration:")
    assert (
        f"{path}: network \"police\": discovery: unknown setting 'timeot_s'; "
        "did you mean 'timeout_s'?\n"
    ) in err


# An edge adapter's own file: the same wording (it configures one network, named in the file).

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "police-adapter.example.toml"


def _adapter_config(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert text.count(old) == 1
    path = tmp_path / "police-adapter.toml"
    path.write_text(text.replace(old, new))
    return path


def _adapter_refused(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_adapter_config(path, "police")
    return caught.value.lines


def test_an_adapter_file_names_its_mistakes_the_same_way(tmp_path: Path) -> None:
    path = _adapter_config(tmp_path, "timeout_s = 5.0", "timeot_s = 5.0\nconcurrency = 0")
    assert _adapter_refused(path) == [
        f"{path}: discovery.concurrency: Input should be greater than or equal to 1 (got 0)",
        f"{path}: discovery: unknown setting 'timeot_s'; did you mean 'timeout_s'?",
    ]


def test_an_adapter_file_syntax_error_and_absence(tmp_path: Path) -> None:
    path = _adapter_config(tmp_path, "onvif_port = 80", "onvif_port = 80 80")
    lineno = EXAMPLE.read_text().splitlines().index("onvif_port = 80") + 1
    assert _adapter_refused(path) == [
        f"{path}, line {lineno}, column 17: Expected newline or end of document after a statement"
    ]
    missing = tmp_path / "absent.toml"
    assert _adapter_refused(missing) == [f"config file {missing} not found (check --config)"]


def test_an_adapter_file_never_shows_a_secret(tmp_path: Path) -> None:
    path = _adapter_config(
        tmp_path, 'username = "admin"', f'username = "admin"\npasword = "{SECRET}"'
    )
    lines = _adapter_refused(path)
    assert lines == [
        f"{path}: credentials: unknown setting 'pasword'; did you mean 'password_env'?"
    ]
