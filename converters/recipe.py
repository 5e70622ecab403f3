"""The recipe: every value that makes the shipped model, in one typed, frozen record.

Stages take a ``Recipe`` as an argument (``train.run_training(recipe, ...)``, ``prune.run_pruning(recipe,
...)``, ``train.run_refining(recipe, ...)``); the model card's ``training`` field is written from it, so
the card says what ran. ``SHIPPED`` is the recipe of the bundled model (a student from random
initialisation), ``PRETRAINED`` the one that starts from ImageNet MobileNetV2 features
(``converters.trunk``); ``smoke()`` cuts either down to seconds for CI.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edgecrop.preprocess import Resize


@dataclass(frozen=True)
class LossWeights:
    """Loss = teacher * KL(teacher map || student) + fixations * NLL(human fixations | student)."""

    teacher: float = 0.5
    fixations: float = 0.5

    def __post_init__(self) -> None:
        if self.teacher < 0 or self.fixations < 0 or self.teacher + self.fixations <= 0:
            raise ValueError("loss weights must be non-negative and not both zero")


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    # the student: the base widths of converters.student.Architecture times width_multiplier
    input_size: int = 256
    resize: Resize = Resize.LETTERBOX
    width_multiplier: float = 1.75  # 167 MFLOPs: 3.3x the budget
    # or a pretrained trunk (converters.trunk: "mobilenet_v2"), cut after block trunk_last, instead of the
    # from-scratch student; width_multiplier is then unused, and the trunk is pruned from its ImageNet widths
    trunk: str | None = None
    trunk_last: int = 13
    # training (cosine-decayed Adam)
    fixation_sets: tuple[str, ...] = ("osie", "eyecrowd")  # their train splits, with fixations
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    loss: LossWeights = field(default_factory=LossWeights)
    # Fisher pruning down to the budget, fine-tuning as it goes, then a short annealed fine-tune
    target_mflops: float = 50.0
    beta: float = 1e-4  # loss (nats) per MFLOP saved
    prune_every: int = 3  # fine-tuning steps between removals
    eval_every: int = 25  # removals between points of the pruning curve
    prune_lr: float = 1e-4
    max_removals: int | None = None
    prune_removals: int = 1  # feature maps removed at each decision (the paper's 1; more for a large trunk)
    finetune_epochs: int = 4
    finetune_lr: float = 5e-4
    # refining, the last stage of both candidates (pruned and from scratch): the loss leans on fixations
    refine_epochs: int = 4
    refine_lr: float = 5e-4
    refine_loss: LossWeights = field(default_factory=lambda: LossWeights(teacher=0.2, fixations=0.8))
    # export
    flip_average: bool = True  # the card tells runtimes to average the maps of the photo and its mirror image
    calibration_photos: int = 240
    limit: int | None = None  # only the first N photos of every set (smoke runs)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", Resize(self.resize))
        for name in ("loss", "refine_loss"):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, LossWeights(**getattr(self, name)))
        object.__setattr__(self, "fixation_sets", tuple(self.fixation_sets))
        counts = ("epochs", "refine_epochs", "batch_size", "prune_every", "eval_every", "input_size", "prune_removals")
        for name in (*counts, "calibration_photos"):
            if getattr(self, name) < 1:
                raise ValueError(f"recipe: {name} must be at least 1")
        if self.width_multiplier <= 0 or self.target_mflops <= 0:
            raise ValueError("recipe: width_multiplier and target_mflops must be positive")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resize"] = self.resize.value
        d["fixation_sets"] = list(self.fixation_sets)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        return cls(**json.loads(text))

    def smoke(self) -> Recipe:
        """Every stage in seconds: a handful of photos, one epoch, a few removals."""
        return replace(
            self,
            epochs=1,
            finetune_epochs=1,
            refine_epochs=1,
            limit=8,
            prune_every=1,
            eval_every=2,
            max_removals=4,
            calibration_photos=8,
            batch_size=4,
        )


SHIPPED = Recipe()

PRETRAINED = Recipe(
    trunk="mobilenet_v2",
    input_size=192,  # the trunk at 192: 313 MFLOPs, pruned 2.1x (at 256 it would be 557, pruned 3.7x)
    fixation_sets=("osie", "eyecrowd", "nus_scene"),
    epochs=5,  # from ImageNet features: a few epochs, not 40 from scratch
    lr=5e-4,
    target_mflops=150.0,  # one view: flip averaging would halve what the network may cost
    prune_every=3,
    prune_removals=6,  # 1,878 maps in 313 gentle decisions (24 at a time, to a 7x cut, lost what it knew)
    eval_every=25,
    finetune_epochs=2,
    refine_epochs=3,
    flip_average=False,
)
"""The pretrained-and-pruned candidate (issue 26): ImageNet MobileNetV2 features, fine-tuned, pruned."""
