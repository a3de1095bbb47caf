"""The registry of dataset products: one line per product.

A product's module is imported only when the product is used, so `unimontage --help`
and a Ray worker running one product never import the others.
"""

from __future__ import annotations

import importlib

from datagen.product import Product

_REGISTERED: dict[str, str] = {
    "collage": "datagen.collage.product:PRODUCT",
    "video-pairs": "datagen.video.product:PRODUCT",
    "storyboard": "datagen.storyboard.product:PRODUCT",
    "conditions": "datagen.conditions.product:PRODUCT",
    "multiview": "datagen.multiview.product:PRODUCT",
    "style": "datagen.style.product:PRODUCT",
}
_LOADED: dict[str, Product] = {}


def register(product: Product) -> Product:
    """Add a product object (plugins, tests); a name may not be taken twice."""
    if product.name in _REGISTERED and _LOADED.get(product.name) is not product:
        raise ValueError(f"a product named {product.name!r} is already registered")
    _REGISTERED[product.name] = f"<object {product.generator}>"
    _LOADED[product.name] = product
    return product


def names() -> list[str]:
    return list(_REGISTERED)


def built_in() -> list[str]:
    """The products this package ships (without ones `register`ed at run time by plugins or tests)."""
    return [n for n, where in _REGISTERED.items() if not where.startswith("<object")]


def get(name: str) -> Product:
    if name not in _LOADED:
        if name not in _REGISTERED:
            raise ValueError(f"unknown product {name!r}; known: {', '.join(_REGISTERED)}")
        module, _, attr = _REGISTERED[name].partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), attr)
    return _LOADED[name]
