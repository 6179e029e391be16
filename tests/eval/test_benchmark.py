"""tools/benchmark.py at a tiny scale: the report's structure, the figures, the JSON,
and that every number in the report's and README's tables comes from the JSON."""

import json
from pathlib import Path

import pytest
from PIL import Image

from optiml_plugin.eval.benchmark import main
from optiml_plugin.eval.report import (
    json_number_strings,
    readme_section,
    render_readme_section,
    table_numbers,
)
from optiml_plugin.eval.summary import compare

TINY = [
    "--num-images", "16", "--phantom-size", "96", "--image-size", "64",
    "--eval-train", "24", "--eval-test", "16", "--seeds", "0", "1",
    "--ablations", "optiml-no-ot", "--max-steps", "2", "--batch-size", "8",
    "--num-workers", "0", "--compute-backbone", "resnet18",
    "--compute-image-size", "64", "--compute-batch-size", "4",
    "--compute-repeats", "1", "--ot-batch", "4", "--ot-cells", "16",
    "--probe-epochs", "5", "--dense-probe-epochs", "2",
]  # fmt: skip
METHODS = ("random-init", "vicreg", "vicregl", "barlowtwins", "optiml")
README = """# project

## Install

text

## The method as implemented

more text
"""


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    argv = [*TINY, "--out", str(root / "out"), "--work", str(root / "work")]
    assert main(argv) == 0
    return root


def test_json_holds_every_run_and_metric(bench: Path) -> None:
    r = json.loads((bench / "out" / "benchmark.json").read_text())
    assert {"meta", "settings", "compute", "runs", "summary", "comparison"} <= set(r)
    names = [run["name"] for run in r["runs"]]
    assert sorted(names) == sorted([*METHODS, "position-only"] * 2 + ["optiml-no-ot"])
    for run in r["runs"]:
        if run["name"] != "position-only":  # the Dice of position alone, no AUROC
            assert set(run["linear"]) == {"1%", "10%", "100%"}
        assert 0.0 <= run["dense"]["mean"] <= 1.0
        assert set(run["dense"]) == {"mean", "lung", "lesion"}
    assert r["summary"]["optiml"]["linear"]["100%"]["n"] == 2
    assert set(r["compute"]["steps"]) == {"vicreg", "vicregl", "barlowtwins", "optiml"}
    assert r["compute"]["steps"]["vicreg"]["ratio_to_vicreg"] == 1.0
    assert set(r["comparison"]) == {"vicreg", "vicregl", "barlowtwins", "random-init", "position-only"}  # fmt: skip
    assert set(r["comparison"]["position-only"]) == {"Dice"}  # no AUROC without images
    assert r["meta"]["command"].startswith("python tools/benchmark.py --num-images 16")


def test_report_structure_and_figures(bench: Path) -> None:
    report = (bench / "out" / "report.md").read_text()
    for heading in ("## Quality (frozen backbone)", "### OPTiML against the baselines",
                    "## Ablations of OPTiML", "## Compute", "## Figures"):  # fmt: skip
        assert heading in report, heading
    for name in (*METHODS, "position-only", "optiml-no-ot"):
        assert f"| {name} (" in report, name
    r = json.loads((bench / "out" / "benchmark.json").read_text())
    assert set(r["figures"]) == {
        "loss_curves",
        "auroc_vs_fraction",
        "transport_plan",
        "tsne",
    }
    for rel in r["figures"].values():
        assert f"]({rel})" in report
        with Image.open(bench / "out" / rel) as im:
            assert im.size[0] > 200 and im.size[1] > 200
    numbers = table_numbers(report)
    assert len(numbers) > 50
    assert set(numbers) <= json_number_strings(r)


def test_readme_section_is_generated_from_the_json(bench: Path) -> None:
    readme = bench / "README.md"
    readme.write_text(README)
    json_path = bench / "out" / "benchmark.json"
    argv = ["--render-only", str(json_path), "--readme", str(readme)]
    assert main(argv) == 0
    text = readme.read_text()
    assert (
        text.index("## Install")
        < text.index("## Results")
        < text.index("## The method as implemented")
    )
    assert main(argv) == 0
    assert readme.read_text() == text  # re-rendering replaces, never duplicates
    assert text.replace(readme_section(readme), "") == README.replace(
        "## The method", "\n## The method"
    ).replace("\n\n\n", "\n\n")
    r = json.loads(json_path.read_text())
    section = readme_section(readme)
    assert section.rstrip() == render_readme_section(r, "out/benchmark.json").rstrip()
    numbers = table_numbers(section)
    assert set(numbers) <= json_number_strings(r)
    assert "80.31" not in numbers  # published anchors are outside the checked tables
    assert "80.31" in section
    # The check is not vacuous: a number that is not in the JSON is caught.
    assert "0.123456" not in json_number_strings(r)
    tampered = section.replace("| vicreg (2) | ", "| vicreg (2) | 0.9871 ", 1)
    assert not set(table_numbers(tampered)) <= json_number_strings(r)


def test_verdict_needs_a_difference_beyond_the_seed_spread() -> None:
    def s(mean: float, std: float) -> dict:
        return {"mean": mean, "std": std, "min": 0, "max": 1, "n": 3}

    summary = {
        "optiml": {"linear": {"100%": s(0.80, 0.01)}, "dense": {"mean": s(0.5, 0.1)}},
        "vicreg": {"linear": {"100%": s(0.75, 0.01)}, "dense": {"mean": s(0.45, 0.1)}},
        "vicregl": {"linear": {"100%": s(0.85, 0.02)}, "dense": {"mean": s(0.9, 0.01)}},
    }
    out = compare(summary, ["100%"])
    assert out["vicreg"]["AUROC 100%"]["verdict"] == "better"
    assert out["vicreg"]["Dice"]["verdict"] == "within spread"
    assert out["vicregl"]["AUROC 100%"]["verdict"] == "worse"
    assert out["vicregl"]["Dice"]["verdict"] == "worse"
