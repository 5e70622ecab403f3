"""The Keras and SavedModel routes of ``edgecrop-convert model``: TensorFlow's own TFLiteConverter
(full-integer int8 with the user's photos as its representative dataset), set up as the project's own
export sets it up (``export.configured``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from .quiet import native_chatter_dropped
from .user_source import ConversionError, Source, SourceSpec
from .user_tflite import reading_rgb


def _custom_objects(spec: SourceSpec) -> dict:
    """The classes of the modules named by --custom-objects (imported from the current folder too), by
    name: what a Keras file with custom layers needs to load."""
    found: dict[str, type] = {}
    for name in spec.custom_objects:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the user's module fails to import: its reason, short
            raise ConversionError(f"--custom-objects {name}: cannot import it ({type(exc).__name__}: {exc})") from None
        finally:
            sys.path.remove(str(Path.cwd()))
        found |= {k: v for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__}
    return found


def load_tensorflow(path: Path, spec: SourceSpec) -> Source:
    """A Keras file's or a SavedModel's map as a Source; every wrong input is a ConversionError."""
    with native_chatter_dropped():
        import tensorflow as tf

    if spec.keep_float is not None:
        raise ConversionError("--keep-float is for the routes through AI Edge Quantizer: use --allow-float here")

    keras = not path.is_dir()
    try:
        if keras:
            owner = tf.keras.models.load_model(path, compile=False, custom_objects=_custom_objects(spec))
            shapes = [tuple(t.shape) for t in owner.inputs]
            names = list(owner.output_names)

            def call(x):
                out = owner(x)
                return dict(zip(names, out if isinstance(out, (list, tuple)) else [out]))
        else:
            owner = tf.saved_model.load(str(path))
            if "serving_default" not in owner.signatures:
                raise ConversionError(f"{path}: the SavedModel has no serving_default signature")
            signature = owner.signatures["serving_default"]
            specs = signature.structured_input_signature[1]
            shapes = [tuple(s.shape) for s in specs.values()]

            def call(x):
                return signature(**{next(iter(specs)): x})
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a broken file makes the loader raise
        raise ConversionError(f"{path}: cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][-1] != 3:
        raise ConversionError(f"{path}: the input is not one image of shape [1, H, W, 3] (inputs {shapes})")
    height, width = shapes[0][1], shapes[0][2]
    if height is None or width is None:
        if spec.size is None:
            raise ConversionError(f"{path}: the input size is not fixed: give it with --size HEIGHTxWIDTH")
        height, width = spec.size
    elif spec.size is not None and tuple(spec.size) != (height, width):
        raise ConversionError(f"{path}: the model takes {height}x{width}, not the --size {spec.size}")

    outputs = call(tf.zeros((1, height, width, 3), tf.float32))
    name = spec.map_output(str(path), list(outputs))
    shape = tuple(outputs[name].shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] != 1):
        raise ConversionError(f"{path}: output {name!r} of shape {list(shape)} is not a single-channel map")
    map_h, map_w = int(shape[1]), int(shape[2])

    if keras:  # a Keras model of the one input and the one map (its own converter path)
        image = tf.keras.Input((height, width, 3), batch_size=1)
        out = owner(image)
        out = out[names.index(name)] if isinstance(out, (list, tuple)) else out
        model = tf.keras.Model(image, tf.keras.layers.Reshape((map_h, map_w, 1))(out))

        def converter():
            return tf.lite.TFLiteConverter.from_keras_model(model)
    else:

        @tf.function(input_signature=[tf.TensorSpec((1, height, width, 3), tf.float32)])
        def saliency(x):
            return tf.reshape(call(x)[name], (1, map_h, map_w, 1))

        function = saliency.get_concrete_function()

        def converter():
            return tf.lite.TFLiteConverter.from_concrete_functions([function], owner)

    def tflite(kind: str, calibration) -> bytes:
        from .export import configured

        bgr = spec.channels == "BGR"  # the network reads BGR: calibrate it so, then make it read RGB
        try:
            examples = [x[..., ::-1] for x in calibration] if bgr else calibration
            with native_chatter_dropped():
                blob = configured(converter(), kind, examples, mixed=spec.allow_float).convert()
        except Exception as exc:  # noqa: BLE001 - the converter's errors are long: the gist, in one line
            first = next((ln for ln in str(exc).splitlines() if "error" in ln.lower()), str(exc)[:200])
            hint = " (try --kind float16, or --allow-float)" if kind == "int8" else ""
            raise ConversionError(f"TensorFlow cannot convert it to {kind}{hint}: {first.strip()[:300]}") from None
        return reading_rgb(blob, str(path)) if bgr else blob

    route = "Keras" if keras else "SavedModel"
    return Source(height, width, map_h, map_w, name, f"{route} -> TensorFlow TFLiteConverter", tflite)
