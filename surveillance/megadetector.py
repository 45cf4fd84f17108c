"""The MegaDetector batch-output vocabulary shared by the node's `edge scan --md-json` and the
console's export: detection categories, how our categories map onto them, the species floor.
(The format: github.com/agentmorris/MegaDetector, megadetector/api/batch_processing/README.)"""

from __future__ import annotations

from broker.payloads import Category

FORMAT_VERSION = "1.6"
MD_ANIMAL, MD_PERSON, MD_VEHICLE = "1", "2", "3"
DETECTION_CATEGORIES: dict[str, str] = {
    MD_ANIMAL: "animal",
    MD_PERSON: "person",
    MD_VEHICLE: "vehicle",
}
MD_CATEGORY: dict[Category, str] = {
    Category.ANIMAL: MD_ANIMAL,
    Category.BIRD: MD_ANIMAL,
    Category.DOG: MD_ANIMAL,
    Category.PERSON: MD_PERSON,
    Category.VEHICLE: MD_VEHICLE,
}
# Categories a detection can have (all but camera-health events), in the order they are listed.
DETECTION_KINDS = tuple(MD_CATEGORY)
# Our finer animal categories, always first in classification_categories.
FINE_CATEGORIES = (Category.BIRD, Category.DOG)
# Lowest species probability written as a classification. The classifier accepts a species at
# 0.5 (edge.classify.DEFAULT_MIN_PROBABILITY); its uint8 outputs come in steps of 1/256 ~ 0.004,
# so the 0.001-0.01 values left after renormalising and burst smoothing are quantisation noise
# that tools would show as if they were candidates. At 0.1 a species is still a plausible
# alternative for a reviewer (the same share below which the classifier calls its own result
# uncertain, edge.classify.DEFAULT_MIN_KEPT_MASS).
SPECIES_FLOOR = 0.1
BBOX_DIGITS = 4
CONF_DIGITS = 3


def md_category(category: Category) -> str:
    """MegaDetector detection category id of one of our categories."""
    try:
        return MD_CATEGORY[category]
    except KeyError:
        raise ValueError(f"category {category.value!r} has no MegaDetector equivalent") from None
