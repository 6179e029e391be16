"""The ``cpu-real`` benchmark preset: pretraining on real radiographs
(``cxr_pool``), frozen evaluation at 224 px next to trivial baselines, a short
Faster R-CNN fine-tuning on TBX11K, and paired bootstrap intervals."""
