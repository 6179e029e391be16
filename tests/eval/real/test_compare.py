from pathlib import Path

import numpy as np
import pytest
import torch

from optiml_plugin.eval.real import compare

N, G = 40, 3


def _output(seed: int, dice_hit: float) -> dict:
    """One frozen evaluation in the worker's format: Dice counts per image, cell
    scores, classification scores per label fraction."""
    g = torch.Generator().manual_seed(seed)
    total = torch.full((N,), 100.0)
    seg = {"inter": total * dice_hit, "total": total}
    cls = {"0.1": torch.rand(5, N, generator=g), "1": torch.rand(1, N, generator=g)}
    return {
        "seg": {"mcsz": seg, "mcsz_crop": seg},
        "cells": torch.rand(N, G, G, generator=g),
        "cls": {"tb": cls, "pneumonia": cls},
    }


def _work(root: Path, dice_hits: list[float]) -> Path:
    (root / "eval").mkdir(parents=True)
    for seed, hit in enumerate(dice_hits):
        torch.save(_output(seed, hit), root / "eval" / f"optiml_s{seed}.pt")
    return root


def _data() -> dict:
    g = torch.Generator().manual_seed(9)
    labels = (torch.arange(N) % 2).float()
    return {
        "tbx_val": {"cells": torch.rand(N, G, G, generator=g) > 0.5},
        "mcsz_test": {"tb": labels},
        "nih_test": {"pneumonia": labels},
    }


def test_compare_pairs_the_runs_the_right_way_round(tmp_path) -> None:
    before = _work(tmp_path / "before", [0.5, 0.6])
    after = _work(tmp_path / "after", [0.7, 0.8])
    result = compare.compare(before, after, "optiml", [0, 1], _data(), reps=50)
    dice = result["lung_dice"]
    assert dice["before"]["mean"] == pytest.approx(0.55)
    assert dice["after"]["mean"] == pytest.approx(0.75)
    # after - before, not the reverse; every resample agrees, so the interval is a point
    assert dice["paired"]["diff"] == pytest.approx(0.2)
    assert dice["paired"]["verdict"] == "better"
    # Identical scores elsewhere (same seeds): no difference, not resolved.
    for key in ("tb_cell_auroc", "tb_auroc_10", "pneumonia_auroc_100"):
        assert result[key]["paired"]["diff"] == pytest.approx(0.0)
        assert result[key]["paired"]["verdict"] == "not resolved"
    table = compare.markdown(result, "old", "new")
    assert "| new - old (paired) |" in table.splitlines()[0]
    assert "+0.200" in table and np.isfinite(dice["after"]["low"])


def test_cli_names_a_missing_evaluation(tmp_path, capsys) -> None:
    before = _work(tmp_path / "before", [0.5, 0.6, 0.7])
    after = _work(tmp_path / "after", [0.5, 0.6])
    with pytest.raises(SystemExit):
        compare.main([str(before), str(after)])
    assert "no optiml evaluation for seeds [2]" in capsys.readouterr().err
