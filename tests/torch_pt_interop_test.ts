// Interop with the Python reference packages (numpy, torch, safetensors,
// zipfile): these start Python, so they run in the end-to-end suite.
import assert from "node:assert/strict";
import { py, withTempDir } from "./helpers.ts";
import { InputError } from "../lib/errors.ts";
import { encodePickle, PyGlobal, PyReduce, PyTuple } from "../lib/io/pickle.ts";
import {
  decodeTorchPt,
  encodeTorchPt,
  PyFloat,
  type TorchTensor,
} from "../lib/io/torch_pt.ts";
import { encodeZip } from "../lib/io/zip.ts";

const D = 3;
const F = 4;
const sae = {
  state_dict: {
    W_enc: {
      dtype: "float32",
      shape: [D, F],
      data: new Float32Array(D * F).map((_, i) => i / 3 - 1),
    },
    W_dec: {
      dtype: "float32",
      shape: [F, D],
      data: new Float32Array(F * D).map((_, i) => Math.cos(i)),
    },
    b_enc: { dtype: "float32", shape: [F], data: new Float32Array(F) },
    b_dec: {
      dtype: "float64",
      shape: [D],
      data: new Float64Array([0.1, 0.2, 0.3]),
    },
    step: {
      dtype: "int64",
      shape: [],
      data: new BigInt64Array([123456789012n]),
    },
    empty: { dtype: "float32", shape: [0, 2], data: new Float32Array(0) },
  } satisfies Record<string, TorchTensor>,
  cfg: {
    architecture: "topk",
    d_in: D,
    d_sae: F,
    k: 2,
    lr: 0.0003,
    l1: new PyFloat(1),
    seed: -7,
    big: 2 ** 40,
    apply_b_dec_to_input: true,
    normalize: false,
    hook: null,
    steps: ["s*.h1.H", "s0.h0.l1"],
    nested: { a: [1, [2.5, "x"]], "": {} },
    unicode: "z_H → ŷ",
  },
};

Deno.test("torch.load(weights_only=True) reads our .pt with the right tensors and cfg", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/sae.pt`;
    const bytes = encodeTorchPt(sae, { archiveName: "sae" });
    assert.deepEqual(encodeTorchPt(sae, { archiveName: "sae" }), bytes); // deterministic
    await Deno.writeFile(path, bytes);
    const out = await py(
      `
import sys, json, torch
for mmap in (False, True):
  obj = torch.load(sys.argv[1], weights_only=True, mmap=mmap)
sd = obj["state_dict"]
res = {k: [str(t.dtype), list(t.shape), t.flatten().tolist()] for k, t in sd.items()}
res["step"][2] = [str(v) for v in res["step"][2]]
cfg = obj["cfg"]
print(json.dumps({"tensors": res, "cfg": cfg, "types": {k: type(v).__name__ for k, v in cfg.items()},
  "keys": list(obj.keys()), "dict": type(obj).__name__, "sd": type(sd).__name__}))
`,
      path,
    );
    const res = JSON.parse(out);
    assert.deepEqual(res.keys, ["state_dict", "cfg"]);
    assert.deepEqual([res.dict, res.sd], ["dict", "dict"]);
    const sd = sae.state_dict;
    assert.deepEqual(res.tensors.W_enc, ["torch.float32", [D, F], [
      ...sd.W_enc.data,
    ]]);
    assert.deepEqual(res.tensors.W_dec, ["torch.float32", [F, D], [
      ...sd.W_dec.data,
    ]]);
    assert.deepEqual(res.tensors.b_enc, ["torch.float32", [F], [0, 0, 0, 0]]);
    assert.deepEqual(res.tensors.b_dec, ["torch.float64", [D], [
      0.1,
      0.2,
      0.3,
    ]]);
    assert.deepEqual(res.tensors.step, ["torch.int64", [], ["123456789012"]]);
    assert.deepEqual(res.tensors.empty, ["torch.float32", [0, 2], []]);
    assert.deepEqual(res.cfg, { ...sae.cfg, l1: 1 });
    assert.equal(res.types.l1, "float");
    assert.equal(res.types.d_in, "int");
    assert.equal(res.types.big, "int");
  });
});

Deno.test("decodeTorchPt reads files written by torch.save (state_dict, views, protocol 4)", async () => {
  await withTempDir(async (dir) => {
    await py(
      `
import sys, torch
d = sys.argv[1]
torch.manual_seed(0)
lin = torch.nn.Linear(3, 2)
torch.save(lin.state_dict(), f"{d}/linear.pt")
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
torch.save({
  "t": base.t(),                      # strided view of a shared storage
  "row": base[1],                     # storage offset
  "same": base,
  "i32": torch.tensor([1, -2], dtype=torch.int32),
  "u8": torch.tensor([0, 255], dtype=torch.uint8),
  "b": torch.tensor([True, False]),
  "param": torch.nn.Parameter(torch.ones(2)),
  "cfg": {"a": 1, "b": [1.5, None, True], "c": "x", 7: "int key"},
}, f"{d}/mixed.pt", pickle_protocol=4)
with open(f"{d}/linear.txt", "w") as f:
  f.write(repr([lin.weight.flatten().tolist(), lin.bias.tolist()]))
`,
      dir,
    );
    const lin = decodeTorchPt(
      await Deno.readFile(`${dir}/linear.pt`),
    ) as Record<string, TorchTensor>;
    const [w, b] = JSON.parse(await Deno.readTextFile(`${dir}/linear.txt`));
    assert.deepEqual(Object.keys(lin), ["weight", "bias"]);
    assert.deepEqual(lin.weight.shape, [2, 3]);
    assert.deepEqual([...lin.weight.data], w.map(Math.fround));
    assert.deepEqual([...lin.bias.data], b.map(Math.fround));

    const m = decodeTorchPt(await Deno.readFile(`${dir}/mixed.pt`)) as Record<
      string,
      TorchTensor
    >;
    assert.deepEqual(m.t, {
      dtype: "float32",
      shape: [4, 3],
      data: new Float32Array([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]),
    });
    assert.deepEqual(m.row, {
      dtype: "float32",
      shape: [4],
      data: new Float32Array([4, 5, 6, 7]),
    });
    assert.deepEqual([...m.same.data], Array.from({ length: 12 }, (_, i) => i));
    assert.deepEqual(m.i32, {
      dtype: "int32",
      shape: [2],
      data: new Int32Array([1, -2]),
    });
    assert.deepEqual(m.u8, {
      dtype: "uint8",
      shape: [2],
      data: new Uint8Array([0, 255]),
    });
    assert.deepEqual(m.b, {
      dtype: "bool",
      shape: [2],
      data: new Uint8Array([1, 0]),
    });
    assert.deepEqual(m.param, {
      dtype: "float32",
      shape: [2],
      data: new Float32Array([1, 1]),
    });
    assert.deepEqual(m.cfg, {
      a: 1,
      b: [1.5, null, true],
      c: "x",
      7: "int key",
    });
  });
});

Deno.test("decodeTorchPt refuses pickles that name other globals", async () => {
  await withTempDir(async (dir) => {
    await py(
      `
import sys, torch, collections
torch.save({"f": collections.Counter("ab")}, sys.argv[1] + "/counter.pt")
torch.save({"t": torch.zeros(2, dtype=torch.float16)}, sys.argv[1] + "/half.pt")
`,
      dir,
    );
    await assert.rejects(
      async () => decodeTorchPt(await Deno.readFile(`${dir}/counter.pt`)),
      /Counter.*not allowed/,
    );
    await assert.rejects(
      async () => decodeTorchPt(await Deno.readFile(`${dir}/half.pt`)),
      InputError,
    );
  });
  // A hand-made archive whose pickle calls os.system must not run it.
  const evil = encodePickle(
    new PyReduce(new PyGlobal("os", "system"), new PyTuple(["echo pwned"])),
  );
  const zip = encodeZip([{ name: "x/data.pkl", data: evil }]);
  assert.throws(() => decodeTorchPt(zip), /os\.system.*not allowed/);
});
