"""The cpu-real report: verdict lines from the intervals, the baseline rows, the
README section replaced in place, and the work-folder lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from optiml_plugin.eval.real import report
from optiml_plugin.eval.real.preset import work_lock


def _summary(mean: float) -> dict:
    return {"mean": mean, "per_seed": [mean], "low": mean - 0.01, "high": mean + 0.01}


def _paired(diff: float, half: float) -> dict:
    from optiml_plugin.eval.real.stats import verdict

    low, high = diff - half, diff + half
    return {"diff": diff, "low": low, "high": high, "verdict": verdict(low, high)}


def _results() -> dict:
    metrics = {
        "lung_dice": {
            "label": "lung Dice",
            "methods": {
                m: _summary(v)
                for m, v in (
                    ("optiml", 0.8),
                    ("vicreg", 0.7),
                    ("random-init", 0.85),
                    ("position-only", 0.6),
                )
            },  # fmt: skip
            "paired": {
                "vicreg": _paired(0.1, 0.02),
                "random-init": _paired(-0.05, 0.01),
                "position-only": _paired(0.2, 0.3),
            },  # fmt: skip
        }
    }
    diag = {k: 0.5 for k, _ in report.DIAG}
    return {
        "meta": {
            "command": "python tools/benchmark.py --preset cpu-real",
            "hardware": {"cpu": "cpu", "cpu_cores": 2},
            "started": "s",
            "finished": "f",
            "wall_s": 60.0,
            "stage_seconds": {
                "pretrain": 30.0,
                "data": 1.0,
                "evaluate_and_finetune": 29.0,
            },
            "pretrain_run_seconds": 60.0,
            "precision": "32-true",
            "note": "",
        },
        "settings": {
            "jobs": 2,
            "image_size": 160,
            "batch_size": 32,
            "steps": 250,
            "seeds": [0],
            "eval_size": 224,
            "bootstrap": 10,
        },  # fmt: skip
        "metrics": metrics,
        "diagnostics": {"optiml": {"mean": diag}, "random-init": {"mean": diag}},
        "head_diagnostics": [],
        "finetune": [
            {
                "name": "optiml",
                "mAP": 0.1,
                "mAP_50": 0.2,
                "seconds": 60,
                "iters": 10,
                "batch": 4,
                "scale": 320,
            }
        ],  # fmt: skip
        "figure": None,
    }


def test_verdicts_and_baseline_rows() -> None:
    text = report.render_report(_results())
    assert "- OPTiML vs vicreg: **better** on lung_dice." in text
    assert "- OPTiML vs random-init: **worse** on lung_dice." in text
    assert "- OPTiML vs position-only: **not resolved** on lung_dice." in text
    assert "| lung Dice | 0.800 [0.790, 0.810] | 0.700" in text
    assert "position-only" in text.splitlines()[text.splitlines().index("| metric | optiml | vicreg | random-init | position-only |")]  # fmt: skip
    assert "| random-init | 0.500" in text  # the diagnostics' baseline row


def test_readme_section_is_replaced_in_place(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Results\n\nphantom\n\n## Tests\n\nt\n")
    report.update_readme(readme, _results(), "results/cpu_real/benchmark.json")
    once = readme.read_text()
    assert (
        once.index(report.HEADING) < once.index("## Results\n") < once.index("## Tests")
    )
    report.update_readme(readme, _results(), "results/cpu_real/benchmark.json")
    assert readme.read_text() == once


def test_a_second_benchmark_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    with work_lock(tmp_path):
        with pytest.raises(RuntimeError, match="in use by another cpu-real benchmark"):
            with work_lock(tmp_path):
                pass
    with work_lock(tmp_path):  # released
        pass
