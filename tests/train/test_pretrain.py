"""End-to-end tests of tools/pretrain.py on the phantom generator (CPU, tiny)."""

import argparse
import csv
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from optiml_plugin.train.export import (
    backbone_state_from_checkpoint,
)
from optiml_plugin.train.export import (
    main as export_main,
)
from optiml_plugin.train.pretrain import main, parse_args, resolve_resume

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--data", "phantom", "--num-images", "64", "--phantom-size", "128",
    "--image-size", "64", "--backbone", "resnet18", "--global-dim", "128",
    "--global-hidden-dim", "128", "--dense-dim", "64", "--dense-hidden-dim", "64",
    "--cvsim-heads", "4", "--batch-size", "8", "--optimizer", "adamw",
    "--lr", "0.01", "--weight-decay", "0.0", "--warmup-epochs", "0",
    "--num-workers", "0", "--log-every", "1",
]  # fmt: skip


def _losses(out: Path) -> list[tuple[int, float]]:
    with open(out / "logs" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return [(int(r["step"]), float(r["train/loss"])) for r in rows]


def test_unknown_config_key_is_named(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("batch_size: 4\nbatchsize: 8\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(cfg)])
    assert "unknown key 'batchsize'" in capsys.readouterr().err


def test_config_values_are_defaults_that_flags_override(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("batch_size: 4\nbackbone: resnet18\n")
    args = parse_args(["--config", str(cfg), "--batch-size", "6"])
    assert args.batch_size == 6 and args.backbone == "resnet18"


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_resume("last", tmp_path)


@pytest.mark.slow
def test_pretrain_reduces_loss_and_exports_a_torchvision_backbone(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    # Upright views: at 64 px (2 x 2 cells) the loss of views rotated up to 180
    # degrees stays flat over 16 steps (measured 108.8 -> 109.7 summed over 4 steps);
    # on real radiographs at 160 px it falls (screen 11 runs: 26.0 -> 21.8).
    argv = [*TINY, "--degrees", "10", "--max-steps", "16", "--checkpoint-every", "8"]
    assert main([*argv, "--out", str(out)]) == 0
    losses = [v for _, v in _losses(out)]
    assert len(losses) == 16
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    state = torch.load(out / "backbone.pth", weights_only=True)
    result = torchvision.models.resnet18().load_state_dict(state, strict=False)
    assert (
        sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
        and not result.unexpected_keys
    )
    meta = json.loads((out / "backbone.json").read_text())
    assert meta["settings"]["global_step"] == 16 and meta["architecture"] == "resnet18"
    assert (out / "transport_plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoints" / "step=8.ckpt").is_file()
    # The checkpoint exporter gives the same tensors as the end-of-run export.
    exported = backbone_state_from_checkpoint(out / "checkpoints" / "last.ckpt")
    assert exported.keys() == state.keys()
    assert all(torch.equal(exported[k], state[k]) for k in state)
    assert (
        export_main([str(out / "checkpoints" / "last.ckpt"), str(tmp_path / "b.pth")])
        == 0
    )
    assert torch.load(tmp_path / "b.pth", weights_only=True).keys() == state.keys()


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "pretrain.py"),
        *TINY,
        "--out",
        str(out),
    ]
    cmd += ["--max-steps", "24", "--checkpoint-every", "4", "--no-figure"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    ckpt = out / "checkpoints" / "step=4.ckpt"
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300

    def written() -> bool:
        # step=4.ckpt is saved before last.ckpt; wait for both, and for last.ckpt's
        # size to stay the same over a second (a loaded machine writes slowly).
        if not (ckpt.exists() and last.exists()):
            return False
        size = last.stat().st_size
        time.sleep(1.0)
        return size > 0 and last.stat().st_size == size

    while first.poll() is None and time.time() < deadline and not written():
        time.sleep(0.2)
    assert first.poll() is None, "the run ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (out / "backbone.pth").exists()  # it really died mid-run
    saved = sorted(p.name for p in (out / "checkpoints").glob("step=*.ckpt"))
    resumed_from = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)[
        "global_step"
    ]
    assert 4 <= resumed_from < 24
    stamp = ckpt.stat().st_mtime_ns

    second = subprocess.run(
        [*cmd, "--resume", "last"], capture_output=True, text=True, env=env, timeout=600
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in second.stderr + second.stdout
    final = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == 24
    assert ckpt.stat().st_mtime_ns == stamp  # step 4 was not trained (and saved) again
    assert saved and (out / "checkpoints" / "step=24.ckpt").is_file()
    assert (out / "backbone.pth").is_file()


def test_diagnostics_are_logged_during_a_run_and_recomputed_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    from optiml_plugin.train.diagnose import main as diagnose_main

    out = tmp_path / "run"
    argv = [*TINY, "--max-steps", "4", "--diagnose-every", "2", "--diagnose-pairs", "8"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "diagnostics.json").read_text())
    assert [h["step"] for h in report["history"]] == [0, 2, 4]
    assert isinstance(report["gate_failures"], list)
    with open(out / "logs" / "metrics.csv") as f:
        logged = [r for r in csv.DictReader(f) if r.get("diag/position_share")]
    assert [int(r["step"]) for r in logged] == [0, 2, 4]
    assert (out / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"
    # The checkpoint alone is diagnosed by the CLI (view settings read from the
    # run's config.yaml; its held-out phantoms are drawn anew).
    diag = tmp_path / "diag"
    assert diagnose_main([str(out / "checkpoints" / "last.ckpt"), "--out", str(diag),
                          "--pairs", "8"]) == 0  # fmt: skip
    again = json.loads((diag / "diagnostics.json").read_text())
    assert again["pairs"] == 8 and set(again["diagnostics"]) == set(report["final"]) - {
        "step"
    }
    assert (diag / "transport_plan.png").is_file()
    # --draws: the first draw is the one above; the second is a new draw of views.
    assert diagnose_main([str(out / "checkpoints" / "last.ckpt"), "--out", str(diag),
                          "--pairs", "8", "--draws", "2", "--batch-size", "4"]) == 0  # fmt: skip
    pooled = json.loads((diag / "diagnostics.json").read_text())
    first, second = pooled["per_draw"]
    assert first != pytest.approx(again["diagnostics"])  # batches of 4, not 8
    assert first["ot_same"] != pytest.approx(second["ot_same"])
    assert pooled["diagnostics"]["ot_same"] == pytest.approx(
        (first["ot_same"] + second["ot_same"]) / 2
    )
    # --backbone-only: the exported backbone.pth, on its own layer4 tokens, gives
    # what the checkpoint's backbone gives on the same held-out pairs.
    from optiml_plugin.eval.real.evaluate import backbone_diagnostics
    from optiml_plugin.train.diagnose import held_out_pairs, load_module, run_settings

    bdiag = tmp_path / "bdiag"
    common = ["--out", str(bdiag), "--pairs", "8", "--backbone-only"]
    assert diagnose_main([str(out / "backbone.pth"), *common]) == 0
    exported = json.loads((bdiag / "diagnostics.json").read_text())["diagnostics"]
    ckpt = out / "checkpoints" / "last.ckpt"
    args = argparse.Namespace(
        data="phantom", data_root=None, pairs=8, seed=None, image_size=None,
        crop_scale=None, degrees=None, hflip_prob=None,
    )  # fmt: skip
    va, vb, ga, gb = held_out_pairs(args, run_settings(ckpt))
    ref = backbone_diagnostics(
        load_module(ckpt).model.backbone,
        {"view_a": va, "view_b": vb, "grid_a": ga, "grid_b": gb},
    )
    assert exported == pytest.approx(ref)
    assert diagnose_main(["random:resnet18", *common]) == 0
    random = json.loads((bdiag / "diagnostics.json").read_text())["diagnostics"]
    assert random["position_share"] != pytest.approx(exported["position_share"])


def test_cli_without_loss_flags_builds_the_default_loss() -> None:
    from optiml_plugin import OPTiMLLoss
    from optiml_plugin.train.pretrain import LOSS_OPTIONS, build_module

    module = build_module(parse_args(["--backbone", "resnet18"]))
    default = OPTiMLLoss()
    names = ("alpha", "beta", "eta", "epsilon", "num_iters", "transport",
             "position_weight", "global_weight", "dense_statistics", "cost",
             "center", "epsilon_scale", "image_decorrelation",
             "feature_matching", "plan_contrast")  # fmt: skip
    for name in names:
        assert getattr(module.criterion, name) == getattr(default, name), name
    # Every loss option is on the command line, except those the run sets itself.
    internal = {"global_invariance_weight", "gather_distributed", "eps"}
    on_cli = {name for _, name, _ in LOSS_OPTIONS}
    assert set(inspect.signature(OPTiMLLoss).parameters) - internal == on_cli


def test_held_out_views_do_not_depend_on_the_training_seed(tmp_path: Path) -> None:
    from PIL import Image

    from optiml_plugin.train.pretrain import build_diagnostics

    rng = np.random.default_rng(0)
    for k in range(4):
        Image.fromarray(rng.integers(0, 255, (96, 96), dtype=np.uint8)).save(
            tmp_path / f"{k}.png"
        )

    def views(*flags: str) -> torch.Tensor:
        args = parse_args([*TINY, "--diagnose-every", "1", "--diagnose-data",
                           str(tmp_path), "--diagnose-pairs", "4", *flags])  # fmt: skip
        return build_diagnostics(args).pairs[0]

    assert torch.equal(views("--seed", "0"), views("--seed", "1"))
    assert not torch.equal(views("--seed", "0"), views("--diagnose-seed", "1"))


@pytest.mark.parametrize("method", ["optiml", "vicreg"])
def test_padding_mode_reaches_the_backbone_and_the_exported_sidecar(
    tmp_path: Path, method: str
) -> None:
    from optiml_plugin.train.pretrain import build_module

    argv = ["--backbone", "resnet18", "--global-dim", "32", "--global-hidden-dim",
            "32", "--dense-dim", "16", "--dense-hidden-dim", "16", "--method", method,
            "--padding-mode", "reflect"]  # fmt: skip
    module = build_module(parse_args(argv))
    padded = [
        m.padding_mode
        for m in module.model.backbone.modules()
        if isinstance(m, torch.nn.Conv2d) and m.padding != (0, 0)
    ]
    assert padded and set(padded) == {"reflect"}
    # A checkpoint's hyper-parameters carry it to optiml-export-backbone's sidecar.
    ckpt = tmp_path / "run.ckpt"
    state = {f"model.{k}": v for k, v in module.model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": dict(module.hparams)}, ckpt)
    assert export_main([str(ckpt), str(tmp_path / "b.pth")]) == 0
    sidecar = json.loads((tmp_path / "b.json").read_text())
    assert sidecar["padding_mode"] == "reflect"
    assert build_module(parse_args(argv[:-2])).model.padding_mode == "zeros"
