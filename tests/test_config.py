"""Environment variables: parsed once, the safe choice on anything unparseable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flwr_datasets_telemetry._config import DEFAULT_ENDPOINT, STARTED_IN, read_config


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "No", "off", " 0 "])
def test_enabled_false_words_disable(value: str) -> None:
    config = read_config({"FLWR_TELEMETRY_ENABLED": value})
    assert not config.enabled
    assert config.disabled_by == f"FLWR_TELEMETRY_ENABLED={value.strip()}"
    assert not config.active


@pytest.mark.parametrize("value", ["1", "true", "yes", "ON", ""])
def test_enabled_true_words_and_empty_keep_the_default(value: str) -> None:
    assert read_config({"FLWR_TELEMETRY_ENABLED": value}).enabled


def test_unparseable_enabled_disables_and_explains() -> None:
    config = read_config({"FLWR_TELEMETRY_ENABLED": "perhaps"})
    assert not config.enabled
    assert "not a yes/no value" in config.problems[0]


@pytest.mark.parametrize(
    ("value", "enabled"), [("1", False), ("true", False), ("0", True), ("maybe", False), ("", True)]
)
def test_do_not_track(value: str, *, enabled: bool) -> None:
    assert read_config({"DO_NOT_TRACK": value}).enabled is enabled


def test_logging_works_while_disabled() -> None:
    config = read_config({"FLWR_TELEMETRY_ENABLED": "0", "FLWR_TELEMETRY_LOGGING": "1"})
    assert (config.enabled, config.logging, config.active) == (False, True, True)


@pytest.mark.parametrize("url", ["ftp://x/y", "telemetry.flower.ai", "http://", "https:///x"])
def test_a_bad_endpoint_disables_rather_than_sending_elsewhere(url: str) -> None:
    config = read_config({"FLWR_TELEMETRY_ENDPOINT": url})
    assert not config.enabled
    assert config.problems


def test_endpoint_default_and_override() -> None:
    assert read_config({}).endpoint == DEFAULT_ENDPOINT
    assert read_config({"FLWR_TELEMETRY_ENDPOINT": "http://127.0.0.1:9/e"}).endpoint == (
        "http://127.0.0.1:9/e"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0.0),
        ("2.5", 2.5),
        (" 30 ", 30.0),
        ("-1", 0.8),
        ("soon", 0.8),
        ("1e9", 0.8),
        ("nan", 0.8),
        ("inf", 0.8),
    ],
)
def test_exit_timeout(raw: str, expected: float) -> None:
    assert read_config({"FLWR_TELEMETRY_EXIT_TIMEOUT": raw}).exit_timeout == expected


def test_blocked_collectors_and_autoload() -> None:
    config = read_config(
        {
            "FLWR_TELEMETRY_DISABLE_COLLECTORS": " Hardware, names,,",
            "FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
    )
    assert config.blocked == {"hardware", "names"}
    assert not config.autoload
    assert read_config({"FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD": "what"}).autoload


def test_home_default_and_override() -> None:
    assert read_config({"FLWR_HOME": "/srv/flwr"}).home == "/srv/flwr"
    default = read_config({}).home
    assert default is not None
    assert default.endswith(".flwr")


@pytest.mark.parametrize("kind", ["file", "no-user", "no-parent"])
def test_an_unusable_home_is_said_and_nothing_is_stored(kind: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    raw = {
        "file": str(blocker),
        "no-user": "~no-such-user-here/x",
        "no-parent": str(tmp_path / "missing" / "flwr"),
    }[kind]
    config = read_config({"FLWR_HOME": raw})
    assert config.home is None
    assert any(
        p.startswith(f"FLWR_HOME {raw!r}") and "each process sends a fresh id" in p
        for p in config.problems
    )


def test_a_relative_home_is_made_absolute_from_where_the_process_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same folder after a chdir (and in children, which run in ``/``)."""
    monkeypatch.chdir(tmp_path)
    assert read_config({"FLWR_HOME": "here"}).home == os.path.join(STARTED_IN, "here")


#: Each variable with an unclear value, in the order they are read: the problem
#: reported, word for word, and the safe choice it falls back to.
UNCLEAR = [
    (
        "FLWR_TELEMETRY_ENABLED",
        "perhaps",
        "FLWR_TELEMETRY_ENABLED='perhaps' is not a yes/no value; telemetry is disabled to be safe",
        ("enabled", False),
    ),
    (
        "DO_NOT_TRACK",
        "maybe",
        "DO_NOT_TRACK='maybe' is not a yes/no value; telemetry is disabled to be safe",
        ("enabled", False),
    ),
    (
        "FLWR_TELEMETRY_LOGGING",
        "loud",
        "FLWR_TELEMETRY_LOGGING='loud' is not a yes/no value; logging stays off",
        ("logging", False),
    ),
    (
        "FLWR_TELEMETRY_ENDPOINT",
        "ftp://x/y",
        "FLWR_TELEMETRY_ENDPOINT='ftp://x/y' is not an http(s) URL; telemetry is disabled rather than sent elsewhere",
        ("enabled", False),
    ),
    (
        "FLWR_TELEMETRY_EXIT_TIMEOUT",
        "soon",
        "FLWR_TELEMETRY_EXIT_TIMEOUT='soon' is not a number of seconds from 0 to 30; using 0.8",
        ("exit_timeout", 0.8),
    ),
    (
        "FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD",
        "what",
        "FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD='what' is not a yes/no value; plugins are loaded (a plugin may be what turns telemetry off)",
        ("autoload", True),
    ),
]


@pytest.mark.parametrize(("name", "raw", "problem", "fallback"), UNCLEAR)
def test_an_unclear_value_falls_back_to_the_safe_choice_and_says_why(
    name: str, raw: str, problem: str, fallback: tuple[str, object], home: Path
) -> None:
    config = read_config({"FLWR_HOME": str(home), name: f" {raw} "})
    assert config.problems == (problem,)
    attribute, value = fallback
    assert getattr(config, attribute) == value


def test_problems_are_reported_in_the_order_of_the_variables(home: Path) -> None:
    environ = {name: raw for name, raw, _, _ in UNCLEAR}
    config = read_config({"FLWR_HOME": str(home / "missing" / "x"), **environ})
    assert config.problems[0].startswith("FLWR_HOME ")
    assert config.problems[1:] == tuple(problem for _, _, problem, _ in UNCLEAR)


def test_an_unclear_endpoint_is_kept_as_given_and_turns_telemetry_off() -> None:
    config = read_config({"FLWR_TELEMETRY_ENDPOINT": " ftp://x/y "})
    assert config.endpoint == "ftp://x/y"  # what `status` shows
    assert config.disabled_by == "FLWR_TELEMETRY_ENDPOINT (not an http(s) URL)"
    earlier = read_config({"DO_NOT_TRACK": "1", "FLWR_TELEMETRY_ENDPOINT": "ftp://x/y"})
    assert earlier.disabled_by == "DO_NOT_TRACK=1"  # the first reason found is kept


@pytest.mark.parametrize("raw", ["", " ", ",", " , ,, "])
def test_blocked_collectors_are_never_unclear(raw: str) -> None:
    config = read_config({"FLWR_TELEMETRY_DISABLE_COLLECTORS": raw})
    assert config.blocked == frozenset()
    assert config.problems == ()
