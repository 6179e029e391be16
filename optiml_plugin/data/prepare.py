"""Command line: convert a public chest X-ray dataset from its original layout.

Sub-commands ``nih``, ``rsna``, ``siim``, ``vindr`` (one per dataset, see
:mod:`optiml_plugin.data.converters`), ``siim-rle`` (label maps back to the
competition's ``train-rle.csv``) and ``show`` (boxes and mask outlines drawn
over the images). Exit status 0 on success, 1 on a conversion error.
"""

from __future__ import annotations

import argparse
import sys

from optiml_plugin.data.converters import ConversionError


def _common(p: argparse.ArgumentParser, test_fraction: bool = True) -> None:
    p.add_argument("--images", required=True, help="folder of the original images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--strict", action="store_true", help="missing/corrupt images are fatal"
    )
    p.add_argument(
        "--resize", type=int, default=None, help="longest side of PNG copies"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the splits")
    p.add_argument("--val-fraction", type=float, default=0.1)
    if test_fraction:
        p.add_argument("--test-fraction", type=float, default=0.1)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per dataset."""
    parser = argparse.ArgumentParser(prog="prepare_data.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("nih", help="NIH ChestX-ray14")
    p.add_argument("--entries", required=True, help="Data_Entry_2017.csv")
    p.add_argument("--train-val-list", required=True, help="train_val_list.txt")
    p.add_argument("--test-list", required=True, help="test_list.txt")
    p.add_argument("--bbox", default=None, help="BBox_List_2017.csv")
    p.add_argument("--allow-overlap", action="store_true")
    _common(p, test_fraction=False)

    p = sub.add_parser("rsna", help="RSNA Pneumonia Detection Challenge")
    p.add_argument("--labels", required=True, help="stage_2_train_labels.csv")
    p.add_argument("--class-info", default=None, help="stage_2_detailed_class_info.csv")
    _common(p)

    p = sub.add_parser("siim", help="SIIM-ACR Pneumothorax")
    p.add_argument("--rle", required=True, help="train-rle.csv")
    _common(p)

    p = sub.add_parser("siim-rle", help="label maps -> SIIM train-rle.csv")
    p.add_argument("--masks", required=True, help="folder of <ImageId>.png label maps")
    p.add_argument("--out", required=True, help="CSV to write")

    p = sub.add_parser("vindr", help="VinDr-CXR")
    p.add_argument("--labels", required=True, help="train.csv")
    p.add_argument("--iou", type=float, default=0.4, help="fusion IoU threshold")
    p.add_argument("--min-readers", type=int, default=1)
    _common(p, test_fraction=False)

    p = sub.add_parser("show", help="draw boxes / mask outlines over images")
    p.add_argument("--coco", required=True)
    p.add_argument("--images", required=True, help="folder file_name is relative to")
    p.add_argument("--masks", default=None)
    p.add_argument("--max-images", type=int, default=8)
    p.add_argument("--out", required=True, help="figure (PNG)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs a sub-command; returns the exit status."""
    args = build_parser().parse_args(argv)
    common = {}
    if args.command in ("nih", "rsna", "siim", "vindr"):
        common = dict(
            images=args.images,
            out=args.out,
            strict=args.strict,
            resize=args.resize,
            seed=args.seed,
            val_fraction=args.val_fraction,
        )
        if hasattr(args, "test_fraction"):
            common["test_fraction"] = args.test_fraction
    try:
        if args.command == "nih":
            from optiml_plugin.data.converters import nih

            nih.convert(
                entries=args.entries,
                train_val_list=args.train_val_list,
                test_list=args.test_list,
                bbox=args.bbox,
                allow_overlap=args.allow_overlap,
                **common,
            )
        elif args.command == "rsna":
            from optiml_plugin.data.converters import rsna

            rsna.convert(labels=args.labels, class_info=args.class_info, **common)
        elif args.command == "siim":
            from optiml_plugin.data.converters import siim

            siim.convert(rle=args.rle, **common)
        elif args.command == "siim-rle":
            from optiml_plugin.data.converters import siim

            n = siim.write_rle_csv(args.masks, args.out)
            print(f"siim-rle: {n} rows -> {args.out}")
        elif args.command == "vindr":
            from optiml_plugin.data.converters import vindr

            vindr.convert(
                labels=args.labels,
                iou_threshold=args.iou,
                min_readers=args.min_readers,
                **common,
            )
        elif args.command == "show":
            from optiml_plugin.data.overlay import show

            path = show(args.coco, args.images, args.out, args.masks, args.max_images)
            print(f"show: {path}")
    except (ConversionError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
