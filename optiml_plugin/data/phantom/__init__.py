"""Procedural synthetic chest radiographs ("phantoms") with exact lesion annotations.

A phantom is a frontal (PA-like) chest radiograph drawn from a handful of analytic
shapes. It is **synthetic**: it looks roughly like a chest X-ray, which is enough to
exercise the pretraining, evaluation and visualisation code without any patient
data, but it is *not* a medical or physical simulation and must not be used to
draw clinical conclusions.

The image is built as an attenuation map ``A`` (radiograph convention: bright means
dense / attenuating, dark means air) in a canonical body frame, then mapped through
a random pose (scale, shift, rotation of a few degrees). It models:

- the soft-tissue body outline (neck, shoulders, chest wall; thicker in the middle)
  against a dark background;
- two dark lung fields, slightly asymmetric, tapered to the apex, with lateral
  costophrenic angles and lung markings radiating from the hila;
- the mediastinum with the trachea, the aortic knob and the heart shadow, which
  extends more to the patient's left (image right);
- the spine (a vertical band with faint vertebral periodicity and disc spaces);
- posterior ribs (curved arcs across each lung, intercostal spacing growing
  downwards), faint anterior ribs and the clavicles;
- the diaphragm domes (right dome higher) with the denser upper abdomen below and
  an optional gastric bubble;
- exposure variation (gamma, contrast, brightness), a smooth low-frequency intensity
  field and signal-dependent (Poisson-like) Gaussian noise.

Optional lesions (:data:`LESION_CLASSES`) are added inside the lung fields:

- ``nodule``: a small, round, well-defined dense blob;
- ``opacity``: a larger, ill-defined, patchy region (thresholded sum of Gaussian
  blobs) that replaces part of the lung air;
- ``effusion``: fluid filling the bottom of one lung with a meniscus-shaped top
  edge (higher laterally), obliterating the costophrenic angle.

Annotations are exact: a lesion's contribution to the attenuation map is
soft-thresholded (``max(c - 0.02, 0)``, see ``_LESION_THRESHOLD``), so its mask is
exactly the set of pixels where it changes the attenuation, and its box is the
tight bounding box of that mask. Anatomy, exposure and noise come from random
streams that do not depend on the lesions, so the same seed with and without
lesions gives images that differ only inside the lesion masks.

The generator is split by concept: :mod:`.params` (constants), :mod:`.geometry`
(random anatomy, pose and exposure), :mod:`.anatomy`, :mod:`.lesions`,
:mod:`.generate` (one phantom) and :mod:`.dataset`.
"""

from optiml_plugin.data.phantom.dataset import PhantomDataset
from optiml_plugin.data.phantom.generate import Phantom, generate_phantom
from optiml_plugin.data.phantom.params import LESION_CLASSES

__all__ = ["LESION_CLASSES", "Phantom", "PhantomDataset", "generate_phantom"]
