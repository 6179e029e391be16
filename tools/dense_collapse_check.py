"""Short pretraining on phantoms, then the positional-shortcut diagnostics on
held-out phantom pairs: plan accuracy next to the same-index plan's, the
different-image controls, and the variance shares (never against chance alone).

    python tools/dense_collapse_check.py --steps 80
    python tools/dense_collapse_check.py --steps 80 --loss dense_statistics=tokens center=none

The settings not given with ``--loss`` are the package's defaults; a real-data
study of the same figures is tools/shortcut_study.py.
"""

from __future__ import annotations

import argparse
import json
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from optiml_plugin.data.phantom import PhantomDataset
from optiml_plugin.diagnostics import Gate, diagnose
from optiml_plugin.models.cvsim import CVSIM_MODES
from optiml_plugin.train.diagnostics_callback import view_pairs
from optiml_plugin.train.module import OPTiMLModule
from optiml_plugin.transforms import CVSIMTransform


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", nargs="*", default=[], help="OPTiMLLoss KEY=VALUE")
    p.add_argument("--cvsim", default="global", choices=CVSIM_MODES)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hflip-prob", type=float, default=0.0)
    args = p.parse_args()
    loss = {k: _value(v) for k, v in (item.split("=", 1) for item in args.loss)}
    torch.set_num_threads(1)
    pl.seed_everything(args.seed)
    transform = CVSIMTransform(size=128, hf_prob=args.hflip_prob)
    data = PhantomDataset(
        num_images=args.steps * 16, size=192, seed=args.seed, transform=transform
    )
    module = OPTiMLModule(
        model={"backbone": "resnet18", "global_dim": 256, "global_hidden_dim": 256, "dense_dim": 64,
               "dense_hidden_dim": 128, "cvsim_mode": args.cvsim, "cvsim_heads": 4},
        loss=loss, optimizer="adamw", lr=0.004, weight_decay=0.0, warmup_epochs=0.1, batch_size=16,
    )  # fmt: skip
    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False)  # fmt: skip
    start = time.time()
    trainer.fit(module, DataLoader(data, batch_size=16, shuffle=True, drop_last=True))
    elapsed = time.time() - start
    module.eval()
    held_out = PhantomDataset(num_images=32, size=192, seed=99, transform=transform)
    d = diagnose(module.model, module.criterion, *view_pairs(held_out, range(32), 1))
    print(
        f"loss {loss or 'defaults'}, cvsim={args.cvsim}, {args.steps} steps ({elapsed:.0f} s)"
    )
    print(
        f"  plan at the true cell {d['plan_accuracy']:.3f} vs same-index plan "
        f"{d['same_index_accuracy']:.3f}; different images: same-index peak "
        f"{d['same_index_rate_different']:.3f}, OT same/different {d['ot_ratio']:.3f}; "
        f"variance share of cell index {d['position_share']:.3f}, of view mean "
        f"{d['view_mean_share']:.3f}"
    )
    failures = Gate().failures(d)
    print("  gate: " + ("passed" if not failures else "; ".join(failures)))


if __name__ == "__main__":
    main()
