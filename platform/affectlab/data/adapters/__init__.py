"""Dataset adapters: each turns a dataset card into a manifest table.

``ADAPTERS`` is an explicit registry from the card's ``adapter:`` name to an
:class:`~affectlab.data.cards.Adapter`; add a new one by writing a module with an options model
and a ``build(card, options, root)`` function and listing it here.
"""

from __future__ import annotations

from affectlab.data.adapters import affwild2, csv_manifest, lma, lrs, ravdess
from affectlab.data.cards import Adapter

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (csv_manifest.ADAPTER, ravdess.ADAPTER, lrs.ADAPTER, affwild2.ADAPTER, lma.ADAPTER)
}

__all__ = ["ADAPTERS"]
