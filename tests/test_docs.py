"""The README's set-up commands are the ones CI runs, and its figures for the presets are the code's."""

from __future__ import annotations

from pathlib import Path

from cpsgd.pipeline import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def _indented_commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("    ") and line.strip()]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set up"):readme.index("## Use")]
    demo, tests = _indented_commands(setup)
    assert demo == "pip install . && cpsgd demo"
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == tests
    assert "--index-url https://download.pytorch.org/whl/cpu" in tests


def test_readme_gives_the_presets_rates() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    for name, preset in PRESETS.items():
        assert f"`{name}` {preset.bpp:g}" in readme
