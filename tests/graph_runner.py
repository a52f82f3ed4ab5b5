"""Run exported graphs in a fresh Python process where `import lamina` fails, and read back what they computed."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

RUNNER = """
import json, sys
sys.modules["lamina"] = None  # lamina is removed: any import of it (by the graph or its loader) fails
try:
    import lamina
except ImportError:
    pass
else:
    raise SystemExit("lamina is still importable")
import numpy as np
import torch
torch.set_num_threads(1)
torch.set_grad_enabled(False)
path, fmt, data = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
n_batches, n_inputs = (int(v) for v in sys.argv[4:6])
if fmt == "pt2":
    graph = torch.export.load(path).module()
    run = lambda arrays: graph(*[torch.from_numpy(a) for a in arrays])
elif fmt == "torchscript":
    graph = torch.jit.load(path)
    run = lambda arrays: graph(*[torch.from_numpy(a) for a in arrays])
else:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options)
    names = [i.name for i in session.get_inputs()]
    run = lambda arrays: session.run(None, dict(zip(names, arrays)))
results = []
for b in range(n_batches):
    outs = run([data[f"b{b}_{k}"] for k in range(n_inputs)])
    outs = outs if isinstance(outs, (tuple, list)) else [outs]
    results.append([np.asarray(o).astype(np.float64).tolist() for o in outs])
print(json.dumps(results))
"""


def run_graph(path: Path, fmt: str, batches: list[tuple[np.ndarray, ...]]) -> list[list[np.ndarray]]:
    """The graph's outputs for each batch of inputs, computed in one fresh process without lamina."""
    data = path.parent / f"{path.name}.inputs.npz"
    np.savez(data, **{f"b{b}_{k}": a for b, inputs in enumerate(batches) for k, a in enumerate(inputs)})
    args = [str(path), fmt, str(data), str(len(batches)), str(len(batches[0]))]
    out = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return [[np.asarray(o) for o in outs] for outs in json.loads(out.stdout)]
