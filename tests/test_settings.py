"""The settings object: precedence, conversion, refusal of bad values, and that docs list every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.settings import MAX_LORA_RANK, Settings

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


#: The settings that had to be positive when the rule was a hand-kept list in ``Settings.validate``: the marks on
#: the fields must name exactly these, so a dropped or stray ``positive(...)`` shows here.
POSITIVE_SETTINGS = {
    "postgres_pool_size",
    "change_poll_seconds",
    "workers",
    "max_receive_message_bytes",
    "max_send_message_bytes",
    "max_text_bytes",
    "max_batch_size",
    "max_streams_per_principal",
    "default_page_size",
    "max_page_size",
    "default_top_k",
    "max_top_k",
    "max_payload_bytes",
    "payload_chunk_bytes",
    "vector_dimension",
    "embed_batch_size",
    "hnsw_m",
    "hnsw_ef_construction",
    "hnsw_ef_search",
    "write_group_max",
    "checkpoint_threshold_mb",
    "sweep_interval_seconds",
    "trust_root_days",
    "bundle_chunk_bytes",
    "bundle_max_bytes",
    "bundle_max_entries",
    "bundle_max_envelope_bytes",
    "bundle_max_cube_bytes",
    "bundle_max_cubes",
    "peer_timeout_seconds",
    "lexical_refresh_seconds",
    "recall_max_candidates",
    "recall_half_life_days",
    "lora_steps",
    "lora_learning_rate",
    "lora_rank",
    "max_lora_steps",
    "max_transform_cubes",
    "max_queued_operations",
    "operation_cancel_wait_seconds",
    "operation_retention_days",
    "operation_takeover_seconds",
    "usage_flush_seconds",
    "marketplace_witness_timeout_seconds",
    "checkpoint_interval_seconds",
    "checkpoint_wait_seconds",
    "marketplace_sync_seconds",
    "license_flush_seconds",
    "checkpoint_refresh_seconds",
}


def test_the_settings_marked_positive_are_the_known_ones() -> None:
    assert set(Settings.positive_names()) == POSITIVE_SETTINGS


@pytest.mark.parametrize("name", sorted(POSITIVE_SETTINGS))
@pytest.mark.parametrize("value", [0, -1])
def test_a_positive_setting_refuses_zero_and_below(name: str, value: int) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Settings.from_mapping({name: value})
    assert caught.value.reason == "INVALID_CONFIG"
    assert caught.value.message == f"setting {name} must be positive"


#: Settings where 0 turns something off but below 0 means nothing.
NOT_NEGATIVE_SETTINGS = {
    "exact_scoring_cache_mb",
    "expired_retention_seconds",
    "marketplace_witness_quorum",
    "operation_progress_seconds",
}


def test_the_settings_marked_not_negative_are_the_known_ones() -> None:
    assert set(Settings.not_negative_names()) == NOT_NEGATIVE_SETTINGS


@pytest.mark.parametrize("name", sorted(NOT_NEGATIVE_SETTINGS))
def test_a_not_negative_setting_takes_zero_and_refuses_below(name: str) -> None:
    assert getattr(Settings.from_mapping({name: 0}), name) == 0
    with pytest.raises(InvalidArgumentError) as caught:
        Settings.from_mapping({name: -1})
    assert caught.value.reason == "INVALID_CONFIG"
    assert caught.value.message == f"setting {name} must not be negative"


def test_a_default_lora_rank_past_the_largest_trainable_is_refused_at_load() -> None:
    """Otherwise every transform relying on the default would fail with INVALID_TRAINING, long after start-up."""
    assert Settings.from_mapping({"lora_rank": MAX_LORA_RANK}).lora_rank == MAX_LORA_RANK
    with pytest.raises(InvalidArgumentError) as refused:
        Settings.from_mapping({"lora_rank": MAX_LORA_RANK + 1})
    assert refused.value.reason == reasons.INVALID_CONFIG
    assert f"at most {MAX_LORA_RANK}" in str(refused.value)
