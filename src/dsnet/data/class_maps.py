"""Maps between two datasets' label spaces, by class name: how training on a second dataset (more streets,
other cameras and light) can add to a model whose classes are the first one's.

A map names, for every class of the source dataset, the target class its pixels count as, or None to
ignore them (a class the target has no name for). Maps are registered by name (``cityscapes-to-camvid``);
a config may also give one inline as ``{source class: target class or null}``. Label spaces whose class
names are the same set (Cityscapes and BDD100K) need no map.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .label_space import LabelSpace

__all__ = ["CLASS_MAPS", "ClassMap", "class_map_lut", "resolve_class_map"]

ClassMap = Mapping[str, "str | None"]

# Cityscapes' 19 training classes (BDD100K uses the same) in CamVid's 11 (SegNet's grouping of CamVid's 32
# classes: Wall counts as Building, Truck_Bus and Train as Car, MotorcycleScooter as Bicyclist, TrafficLight
# as SignSymbol). CamVid's Bicyclist is the rider with the bike, so Cityscapes' rider goes there too.
# Terrain (grass, soil) has no CamVid class of its own: ignored rather than guessed.
_CITYSCAPES_TO_CAMVID: dict[str, str | None] = {
    "road": "Road",
    "sidewalk": "Sidewalk",
    "building": "Building",
    "wall": "Building",
    "fence": "Fence",
    "pole": "Pole",
    "traffic light": "SignSymbol",
    "traffic sign": "SignSymbol",
    "vegetation": "Tree",
    "terrain": None,
    "sky": "Sky",
    "person": "Pedestrian",
    "rider": "Bicyclist",
    "car": "Car",
    "truck": "Car",
    "bus": "Car",
    "train": "Car",
    "motorcycle": "Bicyclist",
    "bicycle": "Bicyclist",
}

#: the registered maps, by the name a config gives in ``class_map``
CLASS_MAPS: dict[str, ClassMap] = {"cityscapes-to-camvid": _CITYSCAPES_TO_CAMVID}


def resolve_class_map(class_map: str | ClassMap | None) -> ClassMap | None:
    """The map a config names (a registered name, an inline mapping, or None for 'same class names')."""
    if class_map is None or isinstance(class_map, Mapping):
        return class_map
    if class_map not in CLASS_MAPS:
        raise ValueError(f"unknown class map {class_map!r} (known: {', '.join(sorted(CLASS_MAPS))})")
    return CLASS_MAPS[class_map]


def class_map_lut(source: LabelSpace, target: LabelSpace, class_map: str | ClassMap | None) -> np.ndarray:
    """A 256-entry uint8 table from ``source`` training ids to ``target`` training ids (ignored pixels stay
    ignored, as ``target.ignore_index``). Every source class must be named by the map, and every class the
    map names must exist on its side: a map that silently drops a class would train it as ignored."""
    mapping = resolve_class_map(class_map)
    if mapping is None:
        if set(source.classes) != set(target.classes):
            raise ValueError(
                f"{source.name} and {target.name} have different classes: give a class map "
                f"(known: {', '.join(sorted(CLASS_MAPS))}, or an inline {{source class: target class}})"
            )
        mapping = {name: name for name in source.classes}
    unmapped = [name for name in source.classes if name not in mapping]
    if unmapped:
        raise ValueError(f"the class map does not say where {source.name}'s {', '.join(map(repr, unmapped))} go")
    unknown_source = [name for name in mapping if name not in source.classes]
    if unknown_source:
        raise ValueError(f"the class map names {', '.join(map(repr, unknown_source))}, not classes of {source.name}")
    target_ids = {name: i for i, name in enumerate(target.classes)}
    unknown_target = sorted({t for t in mapping.values() if t is not None and t not in target_ids})
    if unknown_target:
        raise ValueError(f"the class map names {', '.join(map(repr, unknown_target))}, not classes of {target.name}")
    lut = np.full(256, target.ignore_index, dtype=np.uint8)
    for source_id, name in enumerate(source.classes):
        goes_to = mapping[name]
        if goes_to is not None:
            lut[source_id] = target_ids[goes_to]
    return lut
