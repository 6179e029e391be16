"""The README's Results section is the rendering of the committed benchmark JSON:
every number of its tables comes from results/benchmark/benchmark.json."""

import json
from pathlib import Path

from optiml_plugin.eval.report import (
    ANCHORS_HEADING,
    json_number_strings,
    readme_section,
    render_readme_section,
    render_report,
    table_numbers,
)

ROOT = Path(__file__).resolve().parents[2]
JSON = "results/benchmark/benchmark.json"


def test_readme_results_are_rendered_from_the_committed_json() -> None:
    results = json.loads((ROOT / JSON).read_text())
    section = readme_section(ROOT / "README.md")
    assert section, "README.md has no '## Results' section"
    assert section.rstrip() == render_readme_section(results, JSON).rstrip()
    numbers = table_numbers(section)
    assert len(numbers) > 50
    missing = set(numbers) - json_number_strings(results)
    assert not missing, f"numbers in the README's tables not in {JSON}: {missing}"
    # the published anchors are there, labelled, and outside the checked tables
    assert ANCHORS_HEADING in section and "80.31" in section
    assert "80.31" not in numbers


def test_committed_report_matches_the_json_and_its_figures_exist() -> None:
    results = json.loads((ROOT / JSON).read_text())
    folder = (ROOT / JSON).parent
    assert (folder / "report.md").read_text() == render_report(results)
    for rel in results["figures"].values():
        assert (folder / rel).is_file(), rel
    seeds = results["settings"]["seeds"]
    assert len(seeds) >= 3
    for name in ("optiml", "vicreg", "vicregl", "barlowtwins", "random-init"):
        assert results["summary"][name]["linear"]["100%"]["n"] == len(seeds)
