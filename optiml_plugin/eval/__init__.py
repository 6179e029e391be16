"""Evaluation of pretrained backbones: classification transfer (linear probe and
fine-tuning, label fractions, seeds, AUROC), a frozen dense segmentation probe
(Dice), and the benchmark that compares OPTiML with Lightly's methods."""
