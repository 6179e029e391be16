"""Evaluation of frozen backbones on fixed, in-memory evaluation sets."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from optiml_plugin.eval.backbone import Features, extract_features
from optiml_plugin.eval.datasets import EvalData, materialize
from optiml_plugin.eval.protocol import dense_probe_dice, linear_probe_auroc
from optiml_plugin.eval.segmentation_probe import position_maps


class Evaluator:
    """Evaluates frozen backbones on fixed, in-memory evaluation sets."""

    def __init__(self, data: EvalData, args: argparse.Namespace) -> None:
        self.data = data
        self.args = args
        cache: dict[int, Any] = {}
        for name in ("cls_train", "cls_test", "seg_train", "seg_test"):
            ds = getattr(data, name)
            if ds is not None:
                if id(ds) not in cache:
                    cache[id(ds)] = materialize(ds)
                setattr(self, name, cache[id(ds)])
            else:
                setattr(self, name, None)

    def features(self, backbone: torch.nn.Module) -> dict[str, Features]:
        """Frozen features of every evaluation set (each distinct set once)."""
        out: dict[str, Features] = {}
        seen: dict[int, Features] = {}
        for name in ("cls_train", "cls_test", "seg_train", "seg_test"):
            ds = getattr(self, name)
            if ds is None:
                continue
            if id(ds) not in seen:
                keep_dense = ds is self.seg_train or ds is self.seg_test
                seen[id(ds)] = extract_features(
                    backbone, ds, keep_dense=keep_dense, device=self.args.device
                )
            out[name] = seen[id(ds)]
        return out

    def evaluate_position(self, seed: int, grid: int) -> dict[str, Any]:
        """Dice of the dense probe given only a one-hot cell index of a
        ``grid x grid`` map (empty without segmentation data)."""
        if self.seg_train is None:
            return {}
        train, test = self.seg_train.tensors[-1], self.seg_test.tensors[-1]
        return {
            "dense": dense_probe_dice(
                position_maps(len(train), grid),
                train,
                position_maps(len(test), grid),
                test,
                self.data.seg_classes,
                seed,
                epochs=self.args.dense_probe_epochs,
            )  # fmt: skip
        }

    def evaluate(self, backbone: torch.nn.Module, seed: int) -> tuple[dict, Any]:
        """Linear-probe AUROC per fraction and dense-probe Dice of one backbone;
        also returns the pooled test features (for the t-SNE figure)."""
        feats = self.features(backbone)
        result: dict[str, Any] = {}
        pooled = None
        if "cls_train" in feats:
            tr, te = feats["cls_train"], feats["cls_test"]
            result["linear"] = linear_probe_auroc(
                tr.pooled, tr.targets[0], te.pooled, te.targets[0],
                self.data.classes, self.args.fractions, seed,
                epochs=self.args.probe_epochs,
            )  # fmt: skip
            pooled = (te.pooled, te.targets[0])
        if "seg_train" in feats:
            tr, te = feats["seg_train"], feats["seg_test"]
            result["dense"] = dense_probe_dice(
                tr.dense, tr.targets[-1], te.dense, te.targets[-1],
                self.data.seg_classes, seed, epochs=self.args.dense_probe_epochs,
            )  # fmt: skip
        return result, pooled
