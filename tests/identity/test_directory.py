"""Directory files: CSV and YAML, lookups, and errors that name the file and line or key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.directory import Directory, DirectoryEntry, DirectoryError
from collector.identity import IdentityResolver

USER_ID = "39f0bc8b17feb2fe0e9291b4dc40c73ec6d6de02ccec3be18fd0babdde227507"


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


# -- CSV -------------------------------------------------------------------------------------

CSV = """key,team,department
dev@example.com,payments,engineering
ci-runner,platform,engineering
device:39f0bc8b,platform,
ops@example.com,,operations
"""


def test_csv_docstring_example(tmp_path: Path) -> None:
    directory = Directory.load(_write(tmp_path, "people.csv", CSV))
    assert len(directory) == 4
    assert directory.lookup("DEV@example.com") == DirectoryEntry("payments", "engineering")
    assert directory.lookup("ci-runner") == DirectoryEntry("platform", "engineering")
    assert directory.lookup(USER_ID) == DirectoryEntry("platform", None)
    assert directory.lookup("device:39f0bc8b") == DirectoryEntry("platform", None)
    assert directory.lookup("ops@example.com") == DirectoryEntry(None, "operations")
    assert directory.lookup("nobody@example.com") is None
    assert directory.lookup(None, "", "ci-runner") == DirectoryEntry("platform", "engineering")


def test_csv_header_is_forgiving_about_case_spaces_order_and_bom(tmp_path: Path) -> None:
    text = " Team , KEY \nplatform , ci-runner \n"
    path = _write(tmp_path, "people.CSV", text, encoding="utf-8-sig")
    directory = Directory.load(path)
    assert directory.lookup("ci-runner") == DirectoryEntry("platform", None)


def test_csv_with_department_only(tmp_path: Path) -> None:
    directory = Directory.load(_write(tmp_path, "d.csv", "key,department\na,ops\n"))
    assert directory.lookup("a") == DirectoryEntry(None, "ops")


def test_csv_extra_and_missing_columns(tmp_path: Path) -> None:
    text = "key,team,department\na,t1,d1,surplus\nb,t2\n"
    directory = Directory.load(_write(tmp_path, "d.csv", text))
    assert directory.lookup("a") == DirectoryEntry("t1", "d1")
    assert directory.lookup("b") == DirectoryEntry("t2", None)


@pytest.mark.parametrize(
    "header", ["email,team,department", "key,squad", "key", "", "team,department"]
)
def test_csv_without_a_usable_header_is_refused(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path, "bad.csv", f"{header}\nx,y,z\n")
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert str(path) in str(info.value)
    assert "header" in str(info.value)


def test_csv_empty_key_names_file_and_line(tmp_path: Path) -> None:
    text = "key,team,department\ndev@example.com,payments,eng\n  ,platform,eng\n"
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert f"{path}:3" in str(info.value)
    assert "empty key" in str(info.value)


# -- YAML ------------------------------------------------------------------------------------

YAML = """
dev@example.com: {team: payments, department: engineering}
ci-runner: {team: platform}
device:39f0bc8b: platform
Ops@Example.com:
  department: operations
12345: numbers
"""


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_yaml_docstring_example(tmp_path: Path, suffix: str) -> None:
    directory = Directory.load(_write(tmp_path, f"people{suffix}", YAML))
    assert len(directory) == 5
    assert directory.lookup("dev@example.com") == DirectoryEntry("payments", "engineering")
    assert directory.lookup("ci-runner") == DirectoryEntry("platform", None)
    assert directory.lookup(USER_ID) == DirectoryEntry("platform", None)
    assert directory.lookup("ops@example.com") == DirectoryEntry(None, "operations")
    assert directory.lookup("12345") == DirectoryEntry("numbers", None)


def test_empty_yaml_is_an_empty_directory(tmp_path: Path) -> None:
    assert len(Directory.load(_write(tmp_path, "empty.yaml", "# nobody yet\n"))) == 0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("alice@example.com: [payments]\n", "alice@example.com", id="list-value"),
        pytest.param("alice@example.com: {squad: x}\n", "alice@example.com", id="unknown-field"),
        pytest.param("ok: {team: a}\nbob@example.com:\n", "bob@example.com", id="empty-value"),
        pytest.param("carol@example.com: 7\n", "carol@example.com", id="number-value"),
    ],
)
def test_yaml_bad_entry_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert str(path) in str(info.value)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "text",
    [pytest.param("- a\n- b\n", id="list"), pytest.param("just a string\n", id="scalar")],
)
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "bad.yml", text)
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert str(path) in str(info.value)
    assert "mapping" in str(info.value)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "a: {team: x}\nb: {team: [unclosed\n")
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "line" in message


# -- files -----------------------------------------------------------------------------------


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "people.json", "{}")
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert str(path) in str(info.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)


def test_loaded_directory_drives_team_resolution(tmp_path: Path) -> None:
    directory = Directory.load(_write(tmp_path, "people.csv", CSV))
    resolver = IdentityResolver(directory)
    identity = resolver.resolve({"user.id": USER_ID, "team.id": "core"}, None)
    assert (identity.actor, identity.team, identity.department) == (
        "device:39f0bc8b",
        "platform",
        "",
    )
    identity = resolver.resolve({"user.email": "Dev@Example.com", "team.id": "core"}, None)
    assert (identity.team, identity.department) == ("payments", "engineering")
