import json
from pathlib import Path

import pytest

from optiml_plugin.train.diagnose import main


def test_pixel_reference_reports_both_plans(tmp_path: Path) -> None:
    out = tmp_path / "pixels"
    argv = ["pixels:2", "--out", str(out), "--pairs", "8", "--image-size", "64",
            "--draws", "2", "--batch-size", "4"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "diagnostics.json").read_text())
    default, l2 = report["default_plan"], report["l2_uncentred_plan"]
    assert report["pairs"] == 8 and report["draws"] == 2
    # Same pairs, same same-index reference; the plans differ.
    assert default["same_index_accuracy"] == pytest.approx(l2["same_index_accuracy"])
    assert default["ot_same"] != pytest.approx(l2["ot_same"])


def test_mirrored_pixel_reference_is_its_own_reference(tmp_path: Path) -> None:
    reports = []
    for spec in ("pixels:2", "pixels:2m"):
        argv = [spec, "--out", str(tmp_path / spec[-2:]), "--pairs", "8",
                "--image-size", "64", "--hflip-prob", "0.5"]  # fmt: skip
        assert main(argv) == 0
        reports.append(json.loads((tmp_path / spec[-2:] / "diagnostics.json").read_text()))  # fmt: skip
    plain, mirror = (r["l2_uncentred_plan"] for r in reports)
    assert mirror["same_index_accuracy"] == pytest.approx(plain["same_index_accuracy"])
    assert mirror["ot_same"] != pytest.approx(plain["ot_same"])
    assert reports[1]["source"] == "pixels:2m"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pixels:x"], "whole number"),
        (["pixels:m"], "whole number"),
        (["pixels:2", "--draws", "0"], "--draws"),
        (["some.pth", "--backbone-only", "--draws", "2"], "backbone-only"),
    ],
)
def test_bad_arguments_are_named(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
