"""A model converted by `edgecrop-convert model` for the Java core's card round trip (golden vectors).

    python -m tests.converted_model     # rewrite android_demo/cropcore/src/test/resources/models/converted_int8.tflite

A small seeded Keras network saved as a float32 TFLite file, converted by the float-TFLite route with a
card unlike the bundled models' (stretch, ImageNet normalisation, logits at temperature 1.5), so that the
Java core reads a user's converted model, checks report included, as Python does.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONVERTED = REPO / "android_demo" / "cropcore" / "src" / "test" / "resources" / "models" / "converted_int8.tflite"


def main() -> int:
    import tensorflow as tf

    from converters.cli import main as convert
    from converters.export import convert as to_tflite

    tf.keras.utils.set_random_seed(3)
    x = tf.keras.Input((48, 64, 3))
    h = tf.keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(x)
    m = tf.keras.layers.Conv2D(1, 3, strides=2, padding="same")(h)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "net.tflite").write_bytes(to_tflite(tf.keras.Model(x, m), "float32"))
        (work / "photos").mkdir()
        with Image.open(REPO / "examples" / "grace_hopper.jpg") as im:
            for k, angle in enumerate((0, 90, 180, 270)):
                im.convert("RGB").rotate(angle, expand=True).save(work / "photos" / f"{k}.jpg")
        CONVERTED.parent.mkdir(parents=True, exist_ok=True)
        flags = ["--resize", "stretch", "--mean", "123.7", "116.3", "103.5", "--std", "58.4", "57.1", "57.4"]
        flags += ["--map-kind", "logits", "--temperature", "1.5", "--overwrite"]
        return convert(
            ["model", str(work / "net.tflite"), "-o", str(CONVERTED), "--calibration", str(work / "photos"), *flags]
        )


if __name__ == "__main__":
    sys.exit(main())
