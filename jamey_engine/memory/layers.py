"""The memory layers and orders, defined once: the store, the HTTP routes (whose OpenAPI schema
lists them), the CLI and the workbench all take them from here."""

from __future__ import annotations

from typing import Literal, get_args

from jamey_engine.errors import InvalidInput

Layer = Literal["short_term", "long_term", "working", "episodic", "semantic"]
LAYERS: tuple[str, ...] = get_args(Layer)  # plain strings: they key dicts and rows
Order = Literal["score", "newest"]
ORDERS: tuple[Order, ...] = get_args(Order)
# The longest query text any front door accepts (the HTTP schema states it too).
MAX_QUERY_CHARS = 2_000


def check_layer(layer: object) -> str:
    """Return ``layer`` if it names one of LAYERS; raise InvalidInput listing them otherwise."""
    if not isinstance(layer, str) or layer not in LAYERS:
        raise InvalidInput(f"layer {layer!r} is not one of: {', '.join(LAYERS)}")
    return layer


def check_layers(layers: object) -> tuple[str, ...]:
    """Validate a sequence of layer names (None means all of them)."""
    if layers is None:
        return LAYERS
    if isinstance(layers, str):
        return (check_layer(layers),)
    checked = tuple(check_layer(layer) for layer in layers)  # type: ignore[attr-defined]
    if not checked:
        raise InvalidInput("layers must name at least one layer (or be omitted for all)")
    return tuple(dict.fromkeys(checked))
