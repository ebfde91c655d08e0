// Interop with the Python reference packages (numpy, torch, safetensors,
// zipfile): these start Python, so they run in the end-to-end suite.
import assert from "node:assert/strict";
import { py, withTempDir } from "./helpers.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafeTensor,
} from "../lib/io/safetensors.ts";

const tensors: Record<string, SafeTensor> = {
  W_enc: {
    dtype: "float32",
    shape: [2, 3],
    data: new Float32Array([1, 2, 3, 4, 5, 6.5]),
  },
  b_dec: { dtype: "float32", shape: [3], data: new Float32Array([-1, 0, 1]) },
  scale: { dtype: "float64", shape: [], data: new Float64Array([Math.E]) },
  steps: {
    dtype: "int64",
    shape: [2],
    data: new BigInt64Array([3n, -(2n ** 50n)]),
  },
  idx: { dtype: "int32", shape: [1], data: new Int32Array([7]) },
  mask: { dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) },
  bytes: { dtype: "uint8", shape: [0], data: new Uint8Array(0) },
};

const PY_REF = `
import numpy as np
ref = dict(
  W_enc=np.array([[1, 2, 3], [4, 5, 6.5]], dtype=np.float32),
  b_dec=np.array([-1, 0, 1], dtype=np.float32),
  scale=np.array(np.e),
  steps=np.array([3, -(2**50)], dtype=np.int64),
  idx=np.array([7], dtype=np.int32),
  mask=np.array([True, False]),
  bytes=np.zeros(0, dtype=np.uint8),
)
`;

Deno.test("encodeSafetensors matches the python package byte for byte and loads there", async () => {
  await withTempDir(async (dir) => {
    const ours = encodeSafetensors(tensors, { format: "pt" });
    assert.deepEqual(encodeSafetensors(tensors, { format: "pt" }), ours); // deterministic
    await Deno.writeFile(`${dir}/ours.safetensors`, ours);
    const out = await py(
      PY_REF + `
import sys, json
from safetensors import safe_open
from safetensors.numpy import save, load_file
path = sys.argv[1]
got = load_file(path)
with safe_open(path, framework="np") as f:
  meta = f.metadata()
  keys = sorted(f.keys())
print(json.dumps({
  "same_bytes": save(ref, metadata={"format": "pt"}) == open(path, "rb").read(),
  "meta": meta,
  "keys": keys,
  "equal": {k: bool(got[k].dtype == a.dtype and got[k].shape == a.shape and (got[k] == a).all()) for k, a in ref.items()},
}))
`,
      `${dir}/ours.safetensors`,
    );
    const res = JSON.parse(out);
    assert.equal(res.same_bytes, true);
    assert.deepEqual(res.meta, { format: "pt" });
    assert.deepEqual(res.keys, Object.keys(tensors).sort());
    for (const k of Object.keys(tensors)) assert.equal(res.equal[k], true, k);
  });
});

Deno.test("decodeSafetensors reads files written by the python package (torch and numpy)", async () => {
  await withTempDir(async (dir) => {
    await py(
      PY_REF + `
import sys, torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch
save_file(ref, sys.argv[1] + "/np.safetensors")
save_torch({"W": torch.arange(6, dtype=torch.float32).reshape(3, 2).t().contiguous()}, sys.argv[1] + "/pt.safetensors", metadata={"k": "v"})
`,
      dir,
    );
    const np = decodeSafetensors(await Deno.readFile(`${dir}/np.safetensors`));
    assert.equal(np.metadata, undefined);
    assert.deepEqual(np.tensors, tensors);
    const pt = decodeSafetensors(await Deno.readFile(`${dir}/pt.safetensors`));
    assert.deepEqual(pt.metadata, { k: "v" });
    assert.deepEqual(pt.tensors.W, {
      dtype: "float32",
      shape: [2, 3],
      data: new Float32Array([0, 2, 4, 1, 3, 5]),
    });
  });
});
