"""The settings object: precedence, conversion, refusal of bad values, and that docs list every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memos_grpc.errors import InvalidArgumentError
from memos_grpc.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_precedence_is_defaults_file_environment_flags(tmp_path: Path) -> None:
    config = tmp_path / "memos.toml"
    config.write_text('listen = "127.0.0.1:7000"\nmax_page_size = 10\nworkers = 3\n')
    settings = Settings.load(
        config_file=config,
        environ={"MEMOS_MAX_PAGE_SIZE": "20", "MEMOS_WORKERS": "4"},
        overrides={"workers": 5, "data_dir": None},
    )
    assert settings.listen == "127.0.0.1:7000"  # file over default
    assert settings.max_page_size == 20  # environment over file
    assert settings.workers == 5  # flag over environment
    assert settings.data_dir == Path("data")  # an unset flag changes nothing


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"workers": "many"}, "workers"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"max_page_size": 0}, "max_page_size"),
        ({"embedder": "gpt"}, "embedder"),
        ({"payload_chunk_bytes": 10 * 1024 * 1024, "max_send_message_bytes": 4 * 1024 * 1024}, "payload_chunk_bytes"),
    ],
)
def test_bad_settings_are_refused_by_name(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Settings.from_mapping(values)
    assert caught.value.reason == "INVALID_CONFIG"
    assert fragment in caught.value.message


def test_unreadable_config_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("listen = ")
    with pytest.raises(InvalidArgumentError, match=r"broken\.toml"):
        Settings.load(config_file=broken, environ={})


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    assert documented == set(Settings.field_names())


def test_documented_defaults_match_the_code() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| `([^`]*)` \|", DOCS.read_text(), flags=re.MULTILINE))
    defaults = Settings()
    for name, shown in rows.items():
        assert str(getattr(defaults, name)) == shown, name
