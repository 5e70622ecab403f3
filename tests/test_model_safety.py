"""A model file is untrusted input: crafted and mutated .tflite files are refused, never a crash.

Every mutant is loaded in a child process, so a crash fails one test instead of killing the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgecrop import ModelError
from edgecrop.modelfile.registry import list_models, resolve_model
from edgecrop.modelfile.verify import OPERATORS, verify_model

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")


def _edit(edit) -> bytes:
    """The bundled int8 model with ``edit(model)`` applied through the flatbuffer object API."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(resolve_model("default").read_bytes()), 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _op(model, name: str):
    return next(
        op
        for op in model.subgraphs[0].operators
        if max(
            model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode
        )
        == getattr(schema.BuiltinOperator, name)
    )


def _set(obj, **values):
    for k, v in values.items():
        setattr(obj, k, v)


# the crashes found by hand (SIGSEGV in allocate_tensors / Interpreter(), 17 GB RSS), rebuilt on any model
CRAFTED = {
    "required operand -1": lambda m: _set(
        _op(m, "CONCATENATION"), inputs=[-1, *list(_op(m, "CONCATENATION").inputs)[1:]]
    ),
    "conv input -1": lambda m: _set(_op(m, "CONV_2D"), inputs=[-1, *list(_op(m, "CONV_2D").inputs)[1:]]),
    "no subgraphs": lambda m: _set(m, subgraphs=[]),
    "two subgraphs": lambda m: _set(m, subgraphs=[m.subgraphs[0], m.subgraphs[0]]),
    "operator swapped for SPLIT": lambda m: _set(m.operatorCodes[0], builtinCode=49, deprecatedBuiltinCode=49),
    "custom operator": lambda m: _set(m.operatorCodes[0], customCode=b"Evil"),
    "17 GB tensor": lambda m: _set(m.subgraphs[0].tensors[5], shape=[1, 32, 32, 16711722]),
    "negative dimension": lambda m: _set(m.subgraphs[0].tensors[5], shape=[1, -32, 32, 16]),
    "tensor index past the end": lambda m: _set(_op(m, "ADD"), outputs=[len(m.subgraphs[0].tensors) + 7]),
    "buffer index past the end": lambda m: _set(m.subgraphs[0].tensors[3], buffer=len(m.buffers) + 1),
    "opcode index past the end": lambda m: _set(m.subgraphs[0].operators[0], opcodeIndex=len(m.operatorCodes)),
    "operator writes a constant": lambda m: _set(
        _op(m, "ADD"),
        outputs=[next(i for i, t in enumerate(m.subgraphs[0].tensors) if m.buffers[t.buffer].data is not None)],
    ),
    "graph input out of range": lambda m: _set(m.subgraphs[0], inputs=[10_000]),
    "no graph output": lambda m: _set(m.subgraphs[0], outputs=[]),
    # a size computed at run time escapes every cap (a 20000x20000 map went through)
    "resize to a size computed at run time": lambda m: _set(
        _op(m, "RESIZE_BILINEAR"), inputs=[_op(m, "RESIZE_BILINEAR").inputs[0], _op(m, "CONV_2D").outputs[0]]
    ),
    "weights shorter than their shape": lambda m: _set(
        m.buffers[next(t.buffer for t in m.subgraphs[0].tensors if m.buffers[t.buffer].data is not None)], data=[1, 2]
    ),
}

_CHILD = """
import json, sys
from edgecrop import EdgecropError, SaliencyModel
for name, path in json.loads(sys.argv[1]).items():
    try:
        SaliencyModel(open(path, 'rb').read(), name=name, num_threads=1)
        print(json.dumps([name, 'loaded']), flush=True)
    except EdgecropError as exc:
        print(json.dumps([name, 'refused', str(exc)]), flush=True)
"""


def test_crafted_models_are_refused_with_one_line(tmp_path):
    files = {}
    for name, edit in CRAFTED.items():
        path = tmp_path / f"{len(files)}.tflite"
        path.write_bytes(_edit(edit))
        files[name] = str(path)
    run = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(files)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"the loader died ({run.returncode}): {run.stdout[-500:]} {run.stderr[-2000:]}"
    results = {r[0]: r[1:] for r in map(json.loads, run.stdout.splitlines())}
    assert set(results) == set(CRAFTED)
    for name, (verdict, *message) in results.items():
        assert verdict == "refused", name
        assert "\n" not in message[0] and message[0].startswith(f"{name}: "), message


def test_verifier_accepts_every_bundled_model():
    for m in list_models():
        verify_model(m.path.read_bytes(), m.name)


@pytest.mark.shared
def test_verifier_accepts_the_teacher(shared):
    from converters.paths import teacher_model_path

    verify_model(teacher_model_path(shared).read_bytes(), "attention-center")


def test_operator_table_matches_the_schema():
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    assert {code: names[code] for code in OPERATORS} == {code: op[0] for code, op in OPERATORS.items()}


def test_truncations_are_refused():
    data = resolve_model("default").read_bytes()
    for cut in (0, 3, 8, 16, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelError):
            verify_model(data[:cut], "cut")


def test_mutated_models_never_crash_the_process():
    """400 mutants of the bundled model (bytes overwritten, mostly in the flatbuffer's tables): each is
    refused with a ModelError or loads and runs; the child must not die and raise nothing else."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_models", "--count", "400", "--seed", "2026"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = run.stdout.splitlines()[-1] if run.stdout else ""
    assert run.returncode >= 0, f"killed by signal {-run.returncode} at mutant {last.split()[0]}"
    assert run.returncode == 0, "\n".join(line for line in run.stdout.splitlines() if " BUG " in line)
    verdicts = [line.split()[1] for line in run.stdout.splitlines()]
    assert len(verdicts) == 400 and set(verdicts) <= {"ok", "refused"}
    assert verdicts.count("refused") > 50  # the mutants do reach the structure


def _requantised(data: bytes, which: str, change: str) -> bytes:
    """The model with one tensor's quantisation changed (``which``: a weight or an activation)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    tensors = model.subgraphs[0].tensors
    constant = [t for t in tensors if t.type == 9 and model.buffers[t.buffer].data is not None]
    activations = [t for t in tensors if t.type == 9 and model.buffers[t.buffer].data is None]
    tensor = (constant if which == "weight" else activations)[0]
    if change == "none":
        tensor.quantization = None
    elif change == "zero_point":
        tensor.quantization.zeroPoint = [300] * len(tensor.quantization.zeroPoint)
    else:
        tensor.quantization.scale = [float(change)] * len(tensor.quantization.scale)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


QUANTISATION_ATTACKS = [
    ("weight", "0"),
    ("weight", "-0.001"),
    ("weight", "inf"),
    ("weight", "nan"),
    ("weight", "1e5"),
    ("weight", "1e30"),
    ("weight", "none"),
    ("weight", "zero_point"),
    ("activation", "none"),
    ("activation", "1e-40"),
]


def test_bad_quantisation_is_refused_before_litert_aborts(tmp_path):
    """Scales of 0, negative, inf, nan, huge or denormal, zero points out of range, or an int8 tensor with no
    quantisation made LiteRT abort (SIGABRT, nothing on stderr) in allocate_tensors: each is one ModelError."""
    data = resolve_model("edgecrop_int8").read_bytes()
    files = []
    for which, change in QUANTISATION_ATTACKS:
        path = tmp_path / f"{which}-{change}.tflite"
        path.write_bytes(_requantised(data, which, change))
        files.append(str(path))
    code = (
        "import sys\nfrom edgecrop import Cropper, ModelError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        Cropper.from_model(path).close(); print('loaded', path)\n"
        "    except ModelError as exc:\n        print('refused', exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == "", run.stderr[-500:]
    lines = run.stdout.splitlines()
    assert len(lines) == len(files) and all(line.startswith("refused") for line in lines), lines
    assert all("quantis" in line or "rescales" in line for line in lines), lines
