"""Seed 001's character transformer decoder: the language model and the lip reader's decoder (A.2.5).

``CharTransformerDecoder.forward(tokens (B, L), memory (B, S, d) | None) -> logits (B, L, V)``.
``Embedding * sqrt(d_model)`` -> sinusoidal positions -> dropout -> N post-norm layers -> final
LayerNorm -> ``out`` (the "softmax layer", ``Linear(d_model, V)``). Each layer, as the seed's
code:

1. causal self-attention, residual + dropout1, ``norm1``;
2. source-target (cross) attention over the visual context MC, residual + dropout2, ``norm2``;
3. ``ffn1``, residual + dropout3, ``norm3``;
4. ``ffn2``, residual + dropout3, the *same* ``norm3`` ("Second FFN as specified").

Departures from the shown code, each the evident intent (SEED-NOTES A.5.6, A.5.7): attention
and positions run over time (batch-first), self-attention is causal, and the cross-attention
sublayer (with ``norm2``) is skipped when ``use_cross_attention=False`` or no memory is given
(LM pretraining); :meth:`CharTransformerDecoder.reset_cross_attention` re-initialises it at
integration ("we now randomly instantiate the source-target attention layer"). The forward
returns logits, not the seed's ``log_softmax`` (losses and decoders apply it). Right-padded
token batches need no key-padding mask: under the causal mask a real position only sees
earlier, real positions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from affectlab.models.vsr_visual import sinusoidal_positions

__all__ = ["CharDecoderLayer", "CharTransformerDecoder", "DecoderFFN", "causal_mask"]


def causal_mask(steps: int, device: torch.device | None = None) -> torch.Tensor:
    """(steps, steps) bool, True where attention is *not* allowed (a key after the query)."""
    return torch.ones(steps, steps, dtype=torch.bool, device=device).triu(1)


class DecoderFFN(nn.Module):
    """``Linear(d, d_ff) -> ReLU -> Dropout -> Linear(d_ff, d)`` (the seed's ``DecoderFFN``)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CharDecoderLayer(nn.Module):
    """One post-norm decoder layer: causal self-attention, optional cross-attention, two FFNs."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm1, self.dropout1 = nn.LayerNorm(d_model), nn.Dropout(dropout)
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm2, self.dropout2 = nn.LayerNorm(d_model), nn.Dropout(dropout)
        self.ffn1 = DecoderFFN(d_model, d_ff, dropout)
        self.ffn2 = DecoderFFN(d_model, d_ff, dropout)
        self.norm3, self.dropout3 = nn.LayerNorm(d_model), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None, attn_mask: torch.Tensor,
                memory_padding: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, d), memory (B, S, d) or None (no cross-attention) -> (B, L, d)."""
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, attn_mask=attn_mask, need_weights=False)[0]))
        if memory is not None:
            ctx = self.cross_attn(x, memory, memory, key_padding_mask=memory_padding, need_weights=False)[0]
            x = self.norm2(x + self.dropout2(ctx))
        x = self.norm3(x + self.dropout3(self.ffn1(x)))
        return self.norm3(x + self.dropout3(self.ffn2(x)))

    def reset_cross_attention(self) -> None:
        """Fresh cross-attention weights (MultiheadAttention's own initialisation) and ``norm2``."""
        attn = self.cross_attn
        nn.init.xavier_uniform_(attn.in_proj_weight)
        nn.init.zeros_(attn.in_proj_bias)
        attn.out_proj.reset_parameters()
        nn.init.zeros_(attn.out_proj.bias)
        self.norm2.reset_parameters()


class CharTransformerDecoder(nn.Module):
    """Character transformer decoder / language model (see the module docstring).

    Args:
        vocab_size: Number of token ids V (embedding rows and ``out`` rows).
        d_model: Model size (1024 in the seed).
        num_layers: Decoder layers N (6).
        num_heads: Attention heads (16).
        d_ff: FFN hidden size (4096).
        dropout: Dropout everywhere (0.1).
    """

    def __init__(self, vocab_size: int, *, d_model: int, num_layers: int, num_heads: int, d_ff: int,
                 dropout: float) -> None:
        super().__init__()
        self.vocab_size, self.d_model = vocab_size, d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(CharDecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)  # the shared "softmax layer"

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor | None = None, *,
                memory_mask: torch.Tensor | None = None, use_cross_attention: bool = True) -> torch.Tensor:
        """Next-token logits (B, L, V) for every position of ``tokens`` (B, L) (starting with SOS).

        Args:
            tokens: Token ids (B, L), right-padded.
            memory: Visual context MC (B, S, d_model); None for the language model.
            memory_mask: Valid memory steps (B, S) bool; all valid if None.
            use_cross_attention: False skips the cross-attention sublayer even with a memory.

        Raises:
            ValueError: ``tokens`` is not (B, L) or ``memory`` does not match it.
        """
        if tokens.dim() != 2:
            raise ValueError(f"decoder expects tokens (B, L), got {tuple(tokens.shape)}")
        if not use_cross_attention:
            memory = None
        if memory is not None and (memory.dim() != 3 or memory.shape[0] != tokens.shape[0]
                                   or memory.shape[2] != self.d_model):
            raise ValueError(f"decoder expects memory ({tokens.shape[0]}, S, {self.d_model}), "
                             f"got {tuple(memory.shape)}")
        steps = tokens.shape[1]
        x = self.embed(tokens) * math.sqrt(self.d_model)  # (B, L, d)
        x = self.dropout(x + sinusoidal_positions(steps, self.d_model, device=x.device, dtype=x.dtype))
        attn_mask = causal_mask(steps, tokens.device)  # (L, L)
        padding = None if memory_mask is None or memory is None else ~memory_mask  # (B, S), True = ignore
        for layer in self.layers:
            x = layer(x, memory, attn_mask, padding)
        return self.out(self.norm(x))  # (B, L, V)

    def reset_cross_attention(self) -> None:
        """Re-initialise every layer's cross-attention (integration: "cold fusion" starts fresh)."""
        for layer in self.layers:
            layer.reset_cross_attention()
