"""``edgecrop info``: a few readable lines of each bundled model's card, what a person choosing a model
wants to see."""

from __future__ import annotations

from collections.abc import Mapping

from ..modelfile.card import ModelCard


def card_summary(card: ModelCard) -> list[str]:
    """A few readable lines for ``edgecrop info``: what a person choosing a model wants to see."""
    inp, out = card.input, card.output
    lines = [card.summary] if card.summary else []
    size = f"{inp.width}x{inp.height} " if inp.width and inp.height else ""
    lines.append(f"input: {size}{inp.resize.value}, {inp.channels}; output: {out.kind.value} (T={out.temperature:g})")
    if out.centre_prior:
        prior = out.centre_prior
        follows = f", moving {prior.confidence:+.2f} with the map's unsureness" if prior.confidence else ""
        lines.append(f"centre prior: weight {prior.weight:.2f}, sigma {prior.sigma:.2f}{follows}")
    if out.flip_average:
        lines.append("flip-averaged: run on the photo and its mirror image (two inferences per map)")
    size_bits = [f"{card.parameters:,} parameters" if card.parameters else "", _mflops(card.flops), card.quantization]
    if any(size_bits):
        lines.append(", ".join(b for b in size_bits if b))
    if card.recommended_policy:
        lines.append(f"recommended policy: {card.recommended_policy.value}")
    for label, m in card.metrics.items():  # every evaluated set the card reports, under its own name
        if not isinstance(m, Mapping):
            continue
        maps, crops, ci = m.get("maps"), m.get("mean_normalised"), m.get("mean_ci95")
        if isinstance(maps, Mapping) and isinstance(maps.get("NSS"), (int, float)):
            score = (
                f"; crops {crops:+.2f} of the way from the centre crop to the best" if isinstance(crops, float) else ""
            )
            if score and isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, float) for v in ci):
                score += f" (95% interval {ci[0]:+.2f} to {ci[1]:+.2f})"
            lines.append(f"{label}: NSS {maps['NSS']:.2f}, CC {maps.get('CC', float('nan')):.2f}{score}")
    if card.licence:
        lines.append(f"licence: {card.licence}")
    return lines


def _mflops(flops: int | None) -> str:
    return f"{flops / 1e6:.1f} MFLOPs" if flops else ""
