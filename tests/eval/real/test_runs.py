"""Pretraining runs of the cpu-real preset: one setting for every method, reuse
only of runs made with the same options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optiml_plugin.eval.real.runs import PretrainSetting, pretrain_one, run_dir


def test_every_method_gets_the_same_options_but_its_name(tmp_path: Path) -> None:
    s = PretrainSetting(
        data_root=tmp_path, held_out=tmp_path / "h.txt", precision="bf16-mixed"
    )
    a = s.argv("vicreg", 0, tmp_path / "a")
    b = s.argv("barlowtwins", 0, tmp_path / "a")
    assert [x for x in a if x != "vicreg"] == [x for x in b if x != "barlowtwins"]
    assert (
        a[a.index("--batch-size") + 1] == "32"
        and a[a.index("--max-steps") + 1] == "250"
    )
    assert a[a.index("--precision") + 1] == "bf16-mixed"
    assert "--diagnose-every" not in a  # the diagnostics need OPTiML's own heads
    o = s.argv("optiml", 0, tmp_path / "a")
    assert o[o.index("--diagnose-data") + 1] == str(tmp_path / "h.txt")


def test_a_finished_run_is_reused_only_with_the_same_options(tmp_path: Path) -> None:
    s = PretrainSetting(data_root=tmp_path)
    out = run_dir(tmp_path, "vicreg", 1)
    out.mkdir(parents=True)
    record = {
        "method": "vicreg",
        "seed": 1,
        "seconds": 5.0,
        "argv": s.argv("vicreg", 1, out),
    }
    (out / "done.json").write_text(json.dumps(record))
    assert pretrain_one(s, "vicreg", 1, tmp_path) == record  # nothing is run
    longer = PretrainSetting(data_root=tmp_path, steps=500)
    with pytest.raises(RuntimeError, match="pretrained with other options"):
        pretrain_one(longer, "vicreg", 1, tmp_path)
