"""The command-line page documents every option the command line has (docs/cli.md)."""
from __future__ import annotations

from pathlib import Path

from spectralign_fast.cli import parser

CLI_PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_page_lists_every_subcommand_and_option():
    text = CLI_PAGE.read_text()
    sub = next(a for a in parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"montage", "stack", "demo"}
    for name, p in sub.choices.items():
        assert f"spectralign-fast {name}" in text, name
        for action in p._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, f"{name} {flag} is not documented in docs/cli.md"
    for placeholder in ("{row}", "{col}", "{z}"):
        assert placeholder in text
