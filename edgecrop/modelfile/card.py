"""The model card: the one typed record of what a model is and how the pipeline must run it.

A card travels inside the .tflite file as JSON metadata (``CARD_METADATA_NAME``). The converters
build a ``ModelCard`` and write ``to_json()``; the runtime (and the Java core, field for field) reads
it with ``from_json()``, which validates every field and raises ``ModelError`` naming the bad one, so
a broken or hostile card is one clear line, never a bare ``KeyError``. A model without a card gets
``ModelCard.default()``: stretch to the input, a non-negative saliency map.

Fields the pipeline acts on are typed (input, output, the centre prior, the recommended policy);
records for people (training, metrics, checks) are JSON objects, checked to be finite and shallow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from .._validate import count, finite, member, number
from ..errors import ModelError
from ..preprocess import OutputKind, Resize
from ..search import Policy

CARD_METADATA_NAME = "edgecrop_model_card"
MAX_CARD_BYTES = 1 << 20
_MAX_DEPTH = 12


@dataclass(frozen=True)
class InputCard:
    """How pixels become the model's input: layout, per-channel (pixel - mean) / std, channel order."""

    resize: Resize = Resize.STRETCH
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    height: int | None = None  # informative: the tensor's shape is authoritative
    width: int | None = None
    channels: str = "RGB"

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", member(Resize, self.resize, "model card: input.resize", error=ModelError))
        object.__setattr__(self, "mean", _triple(self.mean, "input.mean", positive=False))
        object.__setattr__(self, "std", _triple(self.std, "input.std", positive=True))
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None:
                count(value, f"model card: input.{name}", error=ModelError)


@dataclass(frozen=True)
class CentrePrior:
    """A centre-bias prior mixed into the probability map before the search:
    p = (1 - w) * p_model + w * g, where g is a Gaussian at the picture's centre with standard deviations
    ``sigma`` times the picture's width and height (normalised over the picture's cells), and
    w = clip(weight + confidence * (u - 0.5), 0, 0.95) moves with how unsure the map is: u is its
    entropy over log(cells), 0 with all mass on one cell, 1 flat (``confidence`` 0: w = weight).
    Learned on validation crops (converters.calibrate) and carried by the card, so every runtime
    applies the same one."""

    weight: float
    sigma: float
    confidence: float = 0.0

    def __post_init__(self) -> None:
        if not (finite(self.weight) and 0.0 <= self.weight < 1.0):
            raise ModelError(f"model card: output.centre_prior.weight must be in [0, 1), not {self.weight!r}")
        if not (finite(self.sigma) and 0.01 <= self.sigma <= 10.0):
            raise ModelError(f"model card: output.centre_prior.sigma must be in [0.01, 10], not {self.sigma!r}")
        if not (finite(self.confidence) and -10.0 <= self.confidence <= 10.0):
            raise ModelError(
                f"model card: output.centre_prior.confidence must be in [-10, 10], not {self.confidence!r}"
            )


@dataclass(frozen=True)
class OutputCard:
    """What the output map means and how it becomes a probability map."""

    kind: OutputKind = OutputKind.SALIENCY
    temperature: float = 1.0  # logits are divided by it before the softmax
    name: str | None = None  # the output tensor's name, when the model has several
    stride: int | None = None  # input pixels per output cell (informative)
    map: tuple[int, int] | None = None  # (height, width) of the map (informative)
    centre_prior: CentrePrior | None = None
    flip_average: bool = False  # the map is the mean of the photo's and its mirror image's (flipped back)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", member(OutputKind, self.kind, "model card: output.kind", error=ModelError))
        if not isinstance(self.flip_average, bool):
            raise ModelError(f"model card: output.flip_average must be true or false, not {self.flip_average!r}")
        number(self.temperature, "model card: output.temperature", 1e-3, 1e3, error=ModelError)
        if self.name is not None and not isinstance(self.name, str):
            raise ModelError("model card: output.name must be a string")
        if self.stride is not None:
            count(self.stride, "model card: output.stride", error=ModelError)
        if self.map is not None:
            object.__setattr__(self, "map", _int_pair(self.map, "output.map"))
        if self.centre_prior is not None and not isinstance(self.centre_prior, CentrePrior):
            raise ModelError("model card: output.centre_prior must be a CentrePrior")


@dataclass(frozen=True)
class ModelCard:
    """Everything known about a model: what the runtime needs, and what a person should know."""

    name: str
    input: InputCard = field(default_factory=InputCard)
    output: OutputCard = field(default_factory=OutputCard)
    summary: str = ""
    version: str = "1"
    licence: str = ""
    architecture: str = ""
    parameters: int | None = None
    flops: int | None = None
    quantization: str | None = None  # int8, float16, float32, ...
    recommended_policy: Policy | None = None
    training_data: Mapping[str, str] = field(default_factory=dict)  # source -> licence
    training: Mapping[str, Any] = field(default_factory=dict)  # the recipe that made it
    metrics: Mapping[str, Any] = field(default_factory=dict)  # measured figures, with their commands
    checks: Mapping[str, Any] = field(default_factory=dict)  # conversion checks
    limits: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields of a newer card, kept as they are

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError("model card: name must be a non-empty string")
        for f in ("summary", "version", "licence", "architecture", "limits", "notes"):
            if not isinstance(getattr(self, f), str):
                raise ModelError(f"model card: {f} must be a string")
        for f in ("parameters", "flops"):
            if getattr(self, f) is not None:
                count(getattr(self, f), f"model card: {f}", error=ModelError)
        if self.quantization is not None and not isinstance(self.quantization, str):
            raise ModelError("model card: quantization must be a string")
        if self.recommended_policy is not None:
            object.__setattr__(
                self,
                "recommended_policy",
                member(Policy, self.recommended_policy, "model card: recommended_policy", error=ModelError),
            )
        if not isinstance(self.training_data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.training_data.items()
        ):
            raise ModelError("model card: training_data must map sources to licences (strings)")
        for f in ("training", "metrics", "checks", "extra"):
            _json_object(getattr(self, f), f)

    @classmethod
    def default(cls, name: str) -> ModelCard:
        """The card assumed for a model that carries none."""
        return cls(name=name)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse and validate a card; anything wrong is a ModelError naming the field."""
        if len(text) > MAX_CARD_BYTES:
            raise ModelError(f"model card: larger than {MAX_CARD_BYTES} bytes")
        try:
            raw = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ModelError(f"model card: not valid JSON ({exc})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> ModelCard:
        d = dict(_mapping(raw, "model card"))
        inp = _known(_mapping(d.pop("input", {}), "input"), InputCard, "input")
        out = dict(_known(_mapping(d.pop("output", {}), "output"), OutputCard, "output"))
        prior = out.pop("centre_prior", None)
        if prior is not None:
            p = _known(_mapping(prior, "output.centre_prior"), CentrePrior, "output.centre_prior", strict=True)
            out["centre_prior"] = _build(CentrePrior, p, "output.centre_prior")
        own = {f.name for f in fields(cls)} - {"input", "output", "extra"}
        known = {k: d.pop(k) for k in list(d) if k in own}
        if "name" not in known:
            raise ModelError("model card: missing field 'name'")
        return _build(
            cls,
            {
                **known,
                "input": _build(InputCard, inp, "input"),
                "output": _build(OutputCard, out, "output"),
                "extra": d,
            },
            "model card",
        )

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (enums as their values, empty optional fields left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = _plain(getattr(self, f.name))
            if f.name == "extra":
                out.update(value)
            elif value not in (None, "", {}):
                out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)


def card_markdown(card: ModelCard) -> str:
    """The card as a Markdown page (models/<name>.md)."""
    d = card.to_dict()
    lines = [f"# {card.name}", "", card.summary, ""]
    for key, value in d.items():
        if key in ("name", "summary"):
            continue
        text = value if isinstance(value, str) else json.dumps(value, indent=1)
        lines += [f"## {key}", "", text if isinstance(value, (str, int)) else f"```json\n{text}\n```", ""]
    return "\n".join(lines)


# ---- validation helpers: each names the field it rejects -------------------------------------------


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _mapping(v: object, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ModelError(f"model card: {where} must be a JSON object, not {type(v).__name__}")
    return v


def _known(d: Mapping[str, Any], cls: type, where: str, strict: bool = False) -> dict[str, Any]:
    """The entries of ``d`` that are fields of ``cls`` (unknown ones dropped, or refused if strict)."""
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if strict and unknown:
        raise ModelError(f"model card: unknown field {where}.{sorted(unknown)[0]}")
    return {k: v for k, v in d.items() if k in names}


def _build(cls: type, kwargs: dict[str, Any], where: str) -> Any:
    try:
        return cls(**kwargs)
    except ModelError:
        raise
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model card: bad {where} ({exc})") from None


def _int_pair(v: object, where: str) -> tuple[int, int]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ModelError(f"model card: {where} must be two positive integers")
    for x in v:
        count(x, f"model card: {where}", error=ModelError)
    return (int(v[0]), int(v[1]))


def _triple(v: object, where: str, positive: bool) -> tuple[float, float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(finite(x) for x in v):
        raise ModelError(f"model card: {where} must be three finite numbers, not {v!r}")
    if positive and not all(float(x) > 0 for x in v):
        raise ModelError(f"model card: {where} must be positive")
    return (float(v[0]), float(v[1]), float(v[2]))


def _json_object(v: object, where: str, depth: int = 0) -> None:
    """A JSON object of strings, finite numbers, booleans, null, lists and objects, at most _MAX_DEPTH deep."""
    if depth > _MAX_DEPTH:
        raise ModelError(f"model card: {where} is nested too deeply")
    if depth == 0 and not isinstance(v, Mapping):
        raise ModelError(f"model card: {where} must be a JSON object, not {type(v).__name__}")
    if isinstance(v, Mapping):
        for k, x in v.items():
            if not isinstance(k, str):
                raise ModelError(f"model card: {where} has a non-string key")
            _json_object(x, where, depth + 1)
    elif isinstance(v, (list, tuple)):
        for x in v:
            _json_object(x, where, depth + 1)
    elif isinstance(v, float) and not math.isfinite(v):
        raise ModelError(f"model card: {where} holds a non-finite number")
    elif not (v is None or isinstance(v, (str, int, float, bool))):
        raise ModelError(f"model card: {where} holds a {type(v).__name__}")


def _plain(v: Any) -> Any:
    """Dataclasses, enums and tuples as JSON data."""
    if hasattr(v, "__dataclass_fields__"):
        return {f.name: _plain(getattr(v, f.name)) for f in fields(v) if getattr(v, f.name) is not None}
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Enum):
        return v.value
    return v
