"""Reading entry points: the quick look (`_surely_no_plugin`) and the full parse
(`_entry_points`) never hide a no-op plugin that `importlib.metadata` finds, and never
block. Found by an adversarial review: a hidden no-op plugin is telemetry the person
turned off."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from flwr_datasets_telemetry._builtins import GROUP
from flwr_datasets_telemetry._plugins import _entry_points, _surely_no_plugin

NOOP = f"[{GROUP}]\nnoop = acme_noop\n"


def _dist_info(site: Path, name: str, entry_points: str) -> Path:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_bytes(entry_points.encode("utf-8"))
    return info


def _groups_found_by_importlib() -> set[str]:
    metadata.FastPath.__new__.cache_clear()  # type: ignore[attr-defined]
    return {ep.group for dist in metadata.distributions() for ep in dist.entry_points}


@pytest.mark.parametrize(
    "text",
    [
        "\u00a0" + NOOP,  # a no-break space before the header: str.strip removes it
        "\u3000" + NOOP,  # an ideographic space, likewise
        "[console_scripts]\nacme = acme:main\u2028" + NOOP,  # str.splitlines splits here
        "[console_scripts]\nacme = acme:main\u2029" + NOOP,
    ],
    ids=["no-break-space", "ideographic-space", "line-separator", "paragraph-separator"],
)
def test_the_quick_look_reads_lines_as_importlib_metadata_does(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`importlib.metadata` reads ``entry_points.txt`` as UTF-8 and splits and strips
    lines the Unicode way; read as Latin-1, these bytes are neither a line break nor
    whitespace, so the quick look must not conclude "no plugin"."""
    site = tmp_path / "site"
    _dist_info(site, "acme-noop", text)
    monkeypatch.setattr("sys.path", [str(site)])
    assert GROUP in _groups_found_by_importlib()  # the full parse would find it

    assert not _surely_no_plugin()
    assert [ep.name for ep in _entry_points()] == ["noop"]


@pytest.mark.parametrize("odd", [b"/not/a/str", None], ids=["bytes", "none"])
def test_an_odd_sys_path_entry_does_not_hide_the_no_op_plugin(
    odd: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Import ignores ``sys.path`` entries that are not strings, but
    ``metadata.distributions()`` raises TypeError on them (``Lookup`` lowers a bytes
    name and compares it with str suffixes; ``os.path.basename(None)``): the whole
    listing fails, and `_entry_points` returns no plugin at all."""
    site = tmp_path / "site"
    _dist_info(site, "acme-noop", NOOP)
    monkeypatch.setattr("sys.path", [odd, str(site)])
    assert not _surely_no_plugin()  # the quick look rightly leaves it to the parse

    assert [ep.name for ep in _entry_points()] == ["noop"]


def test_a_fifo_for_entry_points_never_blocks_the_parse_nor_hides_the_no_op_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`importlib.metadata` would wait forever reading a FIFO; the parse skips it."""
    import os
    import threading

    site = tmp_path / "site"
    odd = site / "odd-1.0.dist-info"
    odd.mkdir(parents=True)
    (odd / "METADATA").write_text("Metadata-Version: 2.1\nName: odd\nVersion: 1.0\n")
    os.mkfifo(odd / "entry_points.txt")
    _dist_info(site, "acme-noop", NOOP)
    monkeypatch.setattr("sys.path", [str(site)])
    names: list[str] = []
    reader = threading.Thread(
        target=lambda: names.extend(ep.name for ep in _entry_points()), daemon=True
    )
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading entry points blocked on a FIFO"
    assert names == ["noop"]
