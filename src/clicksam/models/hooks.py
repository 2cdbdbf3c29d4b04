"""Decoder hooks: what one mask-decoder call uses besides SAM's own weights.

The decoder knows no method. A caller (a method stage, through the step's context, or a training
loop) hands it a :class:`DecoderHooks`; today the only kind of hook is a key/value plugin for the
token-to-image cross-attention of a given two-way block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Optional

import torch

# kv_plugin(queries B×T×C, image features B×HW×C) -> the keys/values B×HW×C that the block's
# token-to-image cross-attention uses instead of the image features.
KVPlugin = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DecoderHooks:
    """Hooks for one decoder call (immutable; :meth:`with_kv_plugin` returns a new object).

    Attributes:
        kv_plugins: two-way block index (0-based) -> the :data:`KVPlugin` of that block.
    """

    kv_plugins: Mapping[int, KVPlugin] = field(default_factory=lambda: MappingProxyType({}))

    def with_kv_plugin(self, block: int, plugin: KVPlugin) -> "DecoderHooks":
        """These hooks plus ``plugin`` on block ``block``.

        Raises:
            ValueError: the block already has a plugin (two stages cannot both replace its keys/values).
        """
        if not isinstance(block, int) or block < 0:
            raise ValueError(f"block must be a two-way block index >= 0, got {block!r}")
        if block in self.kv_plugins:
            raise ValueError(f"two-way block {block} already has a key/value plugin; two stages cannot both replace it")
        return DecoderHooks(MappingProxyType({**self.kv_plugins, block: plugin}))

    def kv_plugin(self, block: int) -> Optional[KVPlugin]:
        """The plugin of block ``block`` or None."""
        return self.kv_plugins.get(block)

    def check(self, depth: int) -> None:
        """Raise ValueError when a hook names a block that a ``depth``-block transformer lacks."""
        wrong = sorted(b for b in self.kv_plugins if b >= depth)
        if wrong:
            raise ValueError(f"decoder hooks name two-way block(s) {wrong}, but the decoder has {depth} (0-{depth - 1})")


NO_HOOKS = DecoderHooks()
