import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafeTensor,
} from "./safetensors.ts";

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

function withHeader(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

Deno.test("decodeSafetensors throws InputError on corrupt files", () => {
  const good = encodeSafetensors(tensors);
  const t = (dtype: string, shape: number[], offs: number[]) => ({
    dtype,
    shape,
    data_offsets: offs,
  });
  const bad: Record<string, Uint8Array> = {
    empty: new Uint8Array(0),
    headerTooLong: (() => {
      const b = good.slice();
      new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
      return b;
    })(),
    notJson: withHeader("x", 0).map((b, i) => (i === 8 ? 0x7b : b)),
    arrayHeader: withHeader([1], 0),
    f16: withHeader({ a: t("F16", [1], [0, 2]) }, 2),
    sizeMismatch: withHeader({ a: t("F32", [2], [0, 4]) }, 4),
    pastEnd: withHeader({ a: t("F32", [1], [0, 4]) }, 2),
    gap: withHeader({ a: t("F32", [1], [4, 8]) }, 8),
    overlap: withHeader(
      { a: t("F32", [1], [0, 4]), b: t("F32", [1], [0, 4]) },
      4,
    ),
    trailing: withHeader({ a: t("F32", [1], [0, 4]) }, 8),
    badShape: withHeader({ a: t("F32", [-1], [0, 4]) }, 4),
    badMeta: withHeader({ __metadata__: { a: 1 } }, 0),
  };
  for (const [name, bytes] of Object.entries(bad)) {
    assert.throws(() => decodeSafetensors(bytes), InputError, name);
  }
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => decodeSafetensors(good.subarray(0, n)), InputError);
  }
  for (let i = 0; i < good.length; i++) {
    const z = good.slice();
    z[i] ^= 0x21;
    try {
      decodeSafetensors(z);
    } catch (err) {
      assert.ok(err instanceof InputError, `byte ${i}: ${err}`);
    }
  }
});

Deno.test("encodeSafetensors rejects data that does not match dtype and shape", () => {
  assert.throws(
    () =>
      encodeSafetensors({
        a: { dtype: "float32", shape: [3], data: new Float32Array(2) },
      }),
    InputError,
  );
  assert.throws(
    () =>
      encodeSafetensors({
        a: { dtype: "float64", shape: [2], data: new Float32Array(2) },
      }),
    InputError,
  );
});
