"""From a model's raw map to the probability map the crop search works on: one step, used by everyone.

The Cropper, the converters (calibration, evaluation, the teacher's maps), the golden vectors and the Java
core's ``Saliency`` all turn raw output into probability the same way: the card's output kind (logits at a
temperature, probabilities, or unnormalised saliency) becomes a map summing to 1 over the picture's
cells, then the card's centre prior is mixed in. Calibration varies the temperature and the prior, and
says so by passing them.
"""

from __future__ import annotations

import numpy as np

from .modelfile.card import CentrePrior, OutputCard
from .preprocess import OutputKind


def postprocess(
    raw: np.ndarray,
    output: OutputCard,
    *,
    temperature: float | None = None,
    prior: CentrePrior | None = None,
) -> np.ndarray:
    """The probability map (float32, sums to 1) of a raw map over the picture's cells, as ``output`` (a
    model card's) says; ``temperature`` and ``prior`` replace the card's (``CentrePrior(0, ...)``: none)."""
    prob = to_probability(raw, output.kind, output.temperature if temperature is None else temperature)
    prior = output.centre_prior if prior is None else prior
    return prob if prior is None else mix_centre_prior(prob, prior.weight, prior.sigma, prior.confidence)


def to_probability(values: np.ndarray, kind: OutputKind | str, temperature: float = 1.0) -> np.ndarray:
    """Turn a model's map (logits, probabilities or unnormalised saliency) into a map summing to 1."""
    kind = OutputKind(kind)
    values = values.astype(np.float64)
    if kind is OutputKind.LOGITS:
        z = values / temperature
        p = np.exp(z - z.max())
    elif kind is OutputKind.PROBABILITY:
        p = np.clip(values, 0.0, None)
    else:
        p = values - values.min()
    total = p.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(values.shape, 1.0 / values.size, dtype=np.float32)
    return (p / total).astype(np.float32)


def centre_prior_map(height: int, width: int, sigma: float) -> np.ndarray:
    """A Gaussian at the centre of a height x width map of cells, standard deviations ``sigma`` times
    each side, summing to 1 (cell centres at (k + 0.5) / n)."""
    y = ((np.arange(height) + 0.5) / height - 0.5) / sigma
    x = ((np.arange(width) + 0.5) / width - 0.5) / sigma
    g = np.outer(np.exp(-0.5 * y * y), np.exp(-0.5 * x * x))
    return g / g.sum()


MAX_PRIOR_WEIGHT = 0.95


def prior_weight(prob: np.ndarray, weight: float, confidence: float = 0.0) -> float:
    """The centre prior's weight for this map: ``weight`` moved by ``confidence`` times how unsure the map
    is (its entropy over log(cells), minus 0.5), kept in [0, MAX_PRIOR_WEIGHT]."""
    if confidence == 0.0 or prob.size < 2:
        return weight
    p = prob.astype(np.float64).ravel()
    p = p[p > 0] / p.sum()
    unsure = float(-(p * np.log(p)).sum() / np.log(prob.size))
    return float(np.clip(weight + confidence * (unsure - 0.5), 0.0, MAX_PRIOR_WEIGHT))


def mix_centre_prior(prob: np.ndarray, weight: float, sigma: float, confidence: float = 0.0) -> np.ndarray:
    """(1 - w) * prob + w * centre prior, w = prior_weight(prob, weight, confidence): the map the crop
    search works on."""
    weight = prior_weight(prob, weight, confidence)
    if weight <= 0:
        return prob
    height, width = prob.shape
    mixed = (1.0 - weight) * prob.astype(np.float64) + weight * centre_prior_map(height, width, sigma)
    return (mixed / mixed.sum()).astype(np.float32)
