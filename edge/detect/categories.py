"""Mapping of COCO-80 class ids to WildWatch detection categories.

COCO has no deer, fox, boar or raccoon class, so every COCO animal class becomes the one
`animal` category (as camera-trap detectors do); `bird` and `dog` keep their own categories
(avian influenza surveillance and stray/feral dogs at the reserve edge). Ground vehicles and
boats are `vehicle` (poaching access, disturbance on wetlands). Deliberately ignored:
`aeroplane` (COCO models call herons and egrets in flight "aeroplane", and an aircraft overhead
is not an intrusion at a monitoring point) and every object class (teddy bear, chair, ...).
"""

from __future__ import annotations

import logging
from types import MappingProxyType

from broker.payloads import Category

logger = logging.getLogger(__name__)

COCO_PERSON = 0
COCO_BIRD = 14
COCO_DOG = 16

# Class ids index coco80.names (model order, 0-based).
COCO_CATEGORIES: MappingProxyType[int, Category] = MappingProxyType(
    {
        COCO_PERSON: Category.PERSON,
        1: Category.VEHICLE,  # bicycle
        2: Category.VEHICLE,  # car
        3: Category.VEHICLE,  # motorbike
        5: Category.VEHICLE,  # bus
        6: Category.VEHICLE,  # train
        7: Category.VEHICLE,  # truck
        8: Category.VEHICLE,  # boat
        COCO_BIRD: Category.BIRD,
        15: Category.ANIMAL,  # cat
        COCO_DOG: Category.DOG,
        17: Category.ANIMAL,  # horse
        18: Category.ANIMAL,  # sheep
        19: Category.ANIMAL,  # cow
        20: Category.ANIMAL,  # elephant
        21: Category.ANIMAL,  # bear
        22: Category.ANIMAL,  # zebra
        23: Category.ANIMAL,  # giraffe
    }
)

ANIMAL_CATEGORIES = frozenset({Category.ANIMAL, Category.BIRD, Category.DOG})


def coco_category(class_id: int) -> Category | None:
    """Category of a COCO-80 class id, or None when the class is ignored."""
    return COCO_CATEGORIES.get(class_id)


def family(category: Category) -> str:
    """Kind of object for matching boxes across passes and models: bird and dog are animals."""
    return Category.ANIMAL.value if category in ANIMAL_CATEGORIES else category.value
