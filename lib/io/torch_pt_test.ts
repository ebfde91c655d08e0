import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { decodePickle, encodePickle, PyTuple } from "./pickle.ts";
import {
  decodeTorchPt,
  encodeTorchPt,
  isTorchTensor,
  PyFloat,
  type TorchTensor,
} from "./torch_pt.ts";
import { decodeZip, encodeZip } from "./zip.ts";

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

Deno.test("decodeTorchPt round-trips our own encoding", () => {
  const back = decodeTorchPt(encodeTorchPt(sae)) as typeof sae;
  assert.deepEqual(back.state_dict, sae.state_dict);
  assert.deepEqual(back.cfg, { ...sae.cfg, l1: 1 });
  assert.ok(isTorchTensor(back.state_dict.W_enc));
});

Deno.test("decodeTorchPt throws InputError on truncated or corrupted files", () => {
  const good = encodeTorchPt(sae, { archiveName: "sae" });
  assert.throws(() => decodeTorchPt(new Uint8Array(0)), InputError);
  assert.throws(
    () => decodeTorchPt(new Uint8Array([0x80, 2, 0x8a, 0x0a])),
    /legacy/,
  );
  for (let n = 0; n < good.length; n += 13) {
    assert.throws(() => decodeTorchPt(good.subarray(0, n)), InputError);
  }
  for (let i = 0; i < good.length; i++) {
    const z = good.slice();
    z[i] ^= 0x41;
    try {
      decodeTorchPt(z);
    } catch (err) {
      assert.ok(err instanceof InputError, `byte ${i}: ${err}`);
    }
  }
  // Corrupt pickles inside a valid zip: every truncation and every byte flip fails cleanly.
  const pkl = decodeZip(good).get("sae/data.pkl")!;
  const files = [...decodeZip(good)].map(([name, data]) => ({ name, data }));
  const withPkl = (p: Uint8Array) =>
    encodeZip(
      files.map((f) => f.name === "sae/data.pkl" ? { ...f, data: p } : f),
    );
  for (let n = 0; n < pkl.length; n++) {
    assert.throws(() => decodeTorchPt(withPkl(pkl.subarray(0, n))), InputError);
  }
  for (let i = 0; i < pkl.length; i++) {
    const p = pkl.slice();
    p[i] ^= 0x41;
    try {
      decodeTorchPt(withPkl(p));
    } catch (err) {
      assert.ok(err instanceof InputError, `pickle byte ${i}: ${err}`);
    }
  }
});

Deno.test("pickle round-trips scalars, big ints, tuples and nested containers", () => {
  const v = decodePickle(encodePickle({
    ints: [
      0,
      255,
      256,
      65535,
      65536,
      -1,
      2 ** 31,
      -(2 ** 31) - 1,
      2n ** 70n,
      -(2n ** 70n),
    ],
    floats: [0.5, -0, 1e300, new PyFloat(3)],
    t: new PyTuple([1, new PyTuple([]), "s", "s"]),
    m: new Map<string, null>([["k", null]]),
  })) as Map<string, unknown>;
  assert.deepEqual(v.get("ints"), [
    0,
    255,
    256,
    65535,
    65536,
    -1,
    2 ** 31,
    -(2 ** 31) - 1,
    2n ** 70n,
    -(2n ** 70n),
  ]);
  assert.deepEqual(v.get("floats"), [0.5, -0, 1e300, 3]);
  assert.deepEqual(v.get("t"), [1, [], "s", "s"]);
  assert.ok(Object.isFrozen(v.get("t")));
  assert.deepEqual(v.get("m"), new Map([["k", null]]));
});

Deno.test("pickle reader handles long lists, rejects deep nesting and never throws non-InputError on noise", () => {
  const long = Array.from({ length: 200_000 }, (_, i) => i);
  assert.equal((decodePickle(encodePickle(long)) as number[]).length, 200_000);
  // 5000 nested lists, by hand: EMPTY_LIST x 5000, then APPEND x 4999.
  const depth = 5000;
  const deep = new Uint8Array([
    0x80,
    2,
    ...new Array(depth).fill(0x5d),
    ...new Array(depth - 1).fill(0x61),
    0x2e,
  ]);
  const zip = encodeZip([{ name: "x/data.pkl", data: deep }]);
  assert.throws(() => decodeTorchPt(zip), /nesting deeper/);
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let n = 0; n < 2000; n++) {
    const bytes = new Uint8Array(2 + (rand() % 40)).map(() => rand() & 0xff);
    bytes[0] = 0x80;
    bytes[1] = 2;
    try {
      decodePickle(bytes);
    } catch (err) {
      assert.ok(err instanceof InputError, `${bytes}: ${err}`);
    }
  }
});
