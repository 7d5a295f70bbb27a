"""The presets' times have one source (regions.study.presets.MEASURED_SECONDS):
the README, the CLI help and the preset descriptions quote it, and cannot drift."""
import re
from pathlib import Path

from regions.cli import build_parser
from regions.study.presets import MEASURED_SECONDS, PRESETS, preset_time

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readme_quotes_the_measured_times():
    for name, where in (("quick", "It runs the quick study"), ("paper", "--preset paper` runs")):
        m = MEASURED_SECONDS[name]
        around = README[README.index(where):][:400]
        assert f"{m['kind']} {m['seconds']:.0f} s on 2 idle cores" in re.sub(r"\s+", " ", around), \
            f"README's {name} time disagrees with MEASURED_SECONDS[{name!r}]"


def test_the_cli_help_and_the_presets_quote_the_same_times():
    study = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
                 if a.prog.endswith("study"))
    text = re.sub(r"\s+", " ", study.format_help())
    for name in ("quick", "paper"):
        assert preset_time(name) in text
        assert PRESETS[name]["description"].endswith(preset_time(name))
