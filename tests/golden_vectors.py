"""Golden vectors that pin the Java cropcore (android_demo) to the Python SDK's behaviour.

    python -m tests.golden_vectors            # rewrite android_demo/cropcore/src/test/resources/golden.json

Saliency maps (random, synthetic with ties, and the bundled model's maps of real photos) with the crops the
Python search finds for several ratios and options; letterbox layouts; int8 input tables; dequantised and
normalised outputs. tests/test_golden.py fails when the file no longer matches what Python computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from edgecrop import CentrePrior, Cropper, ModelCard, ModelError, OutputCard, read_card
from edgecrop.model import Quantization, input_table
from edgecrop.modelfile.registry import list_models
from edgecrop.postprocess import postprocess
from edgecrop.preprocess import InputSpec, flip_average, layout
from edgecrop.search import Boost, SearchOptions, find_crops, parse_aspects
from tests.converted_model import CONVERTED

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "android_demo" / "cropcore" / "src" / "test" / "resources" / "golden.json"
SAMPLE = REPO / "examples" / "grace_hopper.jpg"
ASPECTS = ["16:9", "1:1", "4:5", "9:16", "3:1"]


def options(width: int, height: int) -> dict[str, SearchOptions]:
    focus = (
        Boost(0.8 * width, 0.2 * height, weight=2.0),
        Boost(0.1 * width, 0.5 * height, 0.2 * width, 0.3 * height, 0.5),
    )
    return {
        "largest": SearchOptions(),
        "scales": SearchOptions(min_scale=0.6, scale_steps=4, area_cost=0.5),
        "top3": SearchOptions(top_k=3, nms_iou=0.5),
        "scales_top2": SearchOptions(min_scale=0.5, scale_steps=3, area_cost=1.2, top_k=2, nms_iou=0.3),
        "focus": SearchOptions(boosts=focus),
        "twitter": SearchOptions(policy="twitter"),
        "centre": SearchOptions(policy="centre"),
    }


def synthetic_maps() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:24, 0:32]
    two = np.zeros((12, 16))
    two[3, 2] = two[3, 13] = 1.0  # two equal peaks: a tie the rules must break the same way
    return {
        "uniform": np.ones((8, 8)),
        "one_hot": np.eye(1, 48, 29).reshape(6, 8) + 0.0,
        "two_peaks": two,
        "corner_blob": np.exp(-((xx - 28) ** 2 + (yy - 3) ** 2) / 8.0),
        "random_uniform": rng.random((17, 23)),
        "random_peaky": rng.gamma(0.3, size=(48, 64)),
        "random_tall": rng.random((40, 9)),
    }


def photo_maps() -> dict[str, np.ndarray]:
    """The bundled default model's maps of the sample photo and of reshaped copies of it."""
    src = Image.open(SAMPLE).convert("RGB")
    photos = {
        "photo_portrait": src,
        "photo_landscape": src.resize((1200, 500)),
        "photo_square": src.crop((0, 44, 512, 556)),
    }
    with Cropper.from_model("default", num_threads=1) as cropper:
        return {name: cropper.saliency(im) for name, im in photos.items()}


IMAGE_SIZES = {
    "uniform": (800, 800),
    "one_hot": (4000, 3000),
    "two_peaks": (1600, 1200),
    "corner_blob": (1920, 1080),
    "random_uniform": (37, 23),
    "random_peaky": (4000, 3000),
    "random_tall": (300, 1700),
    "photo_portrait": (512, 600),
    "photo_landscape": (1200, 500),
    "photo_square": (512, 512),
}


def normalised(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: (m / m.sum()).astype(np.float64) for name, m in maps.items()}


def search_cases(maps: dict[str, np.ndarray]) -> list[dict]:
    ratios = parse_aspects(ASPECTS)
    cases = []
    for map_name, sal in maps.items():
        width, height = IMAGE_SIZES[map_name]
        for opt_name, opt in options(width, height).items():
            crops = find_crops(sal, width, height, ratios, opt)
            cases.append(
                {
                    "name": f"{map_name}/{opt_name}",
                    "map": map_name,
                    "width": width,
                    "height": height,
                    "labels": ASPECTS,
                    "ratios": [r.value for r in ratios],
                    "options": {
                        "policy": opt.policy.value,
                        "min_scale": opt.min_scale,
                        "scale_steps": opt.scale_steps,
                        "area_cost": opt.area_cost,
                        "top_k": opt.top_k,
                        "nms_iou": opt.nms_iou,
                        "boosts": [[b.x, b.y, b.width, b.height, b.weight] for b in opt.boosts],
                    },
                    "crops": [[c.aspect.label, c.x, c.y, c.width, c.height, c.score, c.rank] for c in crops],
                }
            )
    return cases


def layout_cases() -> list[dict]:
    specs = [
        InputSpec(256, 256, 64, 64, "letterbox"),
        InputSpec(384, 384, 24, 24, "letterbox"),
        InputSpec(480, 640, 480, 640, "letterbox"),
        InputSpec(96, 128, 12, 16, "stretch"),
    ]
    sizes = [(800, 600), (600, 800), (4000, 3000), (1, 1), (10000, 10), (37, 23), (512, 600), (1920, 1080)]
    out = []
    for s in specs:
        for w, h in sizes:
            place = layout(w, h, s)
            out.append(
                {
                    "spec": [s.height, s.width, s.map_height, s.map_width, s.resize.value],
                    "image": [w, h],
                    "content": list(place.content),
                    "cells": list(place.cells),
                }
            )
    return out


def lut_cases() -> list[dict]:
    out = []
    for mean, std, scale, zp in [
        ((0, 0, 0), (255, 255, 255), 1 / 255, -128),
        ((123.68, 116.779, 103.939), (1, 1, 1), 0.9, 3),
        ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), 0.0078125, 0),
    ]:
        table = input_table(mean, std, Quantization(scale, zp, np.dtype(np.int8)))
        out.append({"mean": list(mean), "std": list(std), "scale": scale, "zero_point": zp, "lut": table.tolist()})
    return out


def output_cases() -> list[dict]:
    """Dequantisation and the whole postprocess stage as a card specifies it (flip average, kind, temperature,
    prior)."""
    rng = np.random.default_rng(3)
    out = []
    for kind, temperature, scale, zp, prior, flip in [
        ("logits", 1.0, 0.0625, -12, None, False),
        ("logits", 2.0, 0.2, 5, None, False),
        ("probability", 1.0, 0.001, -128, None, False),
        ("saliency", 1.0, 0.05, 0, None, False),
        ("logits", 1.0, 0.1, 0, (0.3, 0.25), False),
        ("logits", 1.5, 0.08, -20, (0.75, 1.5), False),
        ("logits", 1.0, 0.0395, 85, (0.6, 0.5), True),
        ("logits", 1.0, 0.1, 0, (0.3, 0.25, 1.0), False),  # the weight follows the map's unsureness
        ("logits", 2.0, 0.05, 3, (0.0, 0.35, 2.0), False),
        ("logits", 1.0, 0.2, -7, (0.45, 0.2, -0.5), False),
    ]:
        q = rng.integers(-128, 128, 30).astype(np.int8)
        deq = ((q.astype(np.float32) - zp) * scale).astype(np.float32)
        q_mirror = rng.integers(-128, 128, 30).astype(np.int8) if flip else None
        if q_mirror is not None:  # the raw map of the mirrored input, averaged in as the card asks
            deq_mirror = ((q_mirror.astype(np.float32) - zp) * scale).astype(np.float32)
            deq = flip_average(deq.reshape(5, 6), deq_mirror.reshape(5, 6)).ravel()
        card = ModelCard(
            name="t",
            output=OutputCard(
                kind=kind,
                temperature=temperature,
                centre_prior=CentrePrior(*prior) if prior else None,
                flip_average=flip,
            ),
        )
        prob = postprocess(deq.reshape(5, 6), card.output)
        out.append(
            {
                "q": q.tolist(),
                "q_mirror": None if q_mirror is None else q_mirror.tolist(),
                "scale": scale,
                "zero_point": zp,
                "shape": [5, 6],
                "card": card.to_json(),
                "dequantized": deq.tolist(),
                "probability": prob.ravel().tolist(),
            }
        )
    return out


def card_cases() -> dict:
    """The bundled models' cards, and a converted model's (tests/converted_model.py), as Java must read them
    from the .tflite files; and cards it must refuse."""
    bundled = {}
    cards = {m.path.name: m.card() for m in list_models()}
    cards[CONVERTED.name] = read_card(CONVERTED.read_bytes(), CONVERTED.name)  # a user's converted model
    for name, c in cards.items():
        prior = c.output.centre_prior
        bundled[name] = {
            "name": c.name,
            "resize": c.input.resize.value,
            "mean": list(c.input.mean),
            "std": list(c.input.std),
            "kind": c.output.kind.value,
            "temperature": c.output.temperature,
            "centre_prior": [prior.weight, prior.sigma, prior.confidence] if prior else None,
            "flip_average": c.output.flip_average,
            "recommended_policy": c.recommended_policy.value if c.recommended_policy else None,
        }
    bad = [
        "[]",
        "null",
        '"card"',
        "{}",
        '{"name": ""}',
        '{"name": "m", "input": {"mean": [1]}}',
        '{"name": "m", "input": {"resize": "squash"}}',
        '{"name": "m", "output": {"kind": "logits", "temperature": 0}}',
        '{"name": "m", "output": {"centre_prior": {"weight": 1.5, "sigma": 0.3}}}',
        '{"name": "m", "output": {"centre_prior": {"weight": 0.2}}}',
        '{"name": "m", "output": {"centre_prior": {"weight": 0.2, "sigma": 0.3, "confidence": 11}}}',
        '{"name": "m", "recommended_policy": "biggest"}',
        '{"name": "m", "output": {"flip_average": "yes"}}',
        '{"name": "m", "output": {"flip_average": 1}}',
        '{"name": "m", "metrics": ' + "[" * 200 + "]" * 200 + "}",
    ]
    for text in bad:  # every one of these is refused by the Python reader too
        try:
            ModelCard.from_json(text)
        except ModelError:
            continue
        raise AssertionError(f"Python accepts a card Java must refuse: {text[:60]}")
    return {"bundled": bundled, "bad": bad}


def golden() -> dict:
    maps = normalised({**synthetic_maps(), **photo_maps()})
    return {
        "generated_by": "python -m tests.golden_vectors",
        "maps": {name: m.tolist() for name, m in maps.items()},
        "search": search_cases(maps),
        "layout": layout_cases(),
        "lut": lut_cases(),
        "output": output_cases(),
        "cards": card_cases(),
    }


def main() -> int:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden(), separators=(",", ":")))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
