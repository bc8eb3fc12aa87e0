"""Moving the structure dataclasses between devices."""

import dataclasses

from torch import Tensor


def dataclass_to(structure, device):
    """A copy of dataclass ``structure`` whose tensors (and nested structures with ``.to``) are on ``device``;
    plain Python fields (sizes, level pointers) are kept as they are."""

    def move(value):
        if isinstance(value, Tensor) or dataclasses.is_dataclass(value):
            return value.to(device)
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            return [item.to(device) for item in value]
        return value

    return dataclasses.replace(
        structure, **{f.name: move(getattr(structure, f.name)) for f in dataclasses.fields(structure) if f.init}
    )
