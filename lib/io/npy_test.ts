import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { decodeNpy, encodeNpy, NpyReader } from "./npy.ts";

/** A fresh temporary directory for `fn`, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function withHeader(dict: string, data = new Uint8Array(0)): Uint8Array {
  const text = dict + " ".repeat((64 - ((10 + dict.length + 1) % 64)) % 64) +
    "\n";
  const out = new Uint8Array(10 + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(new TextEncoder().encode(text), 10);
  out.set(data, 10 + text.length);
  return out;
}

Deno.test("decodeNpy throws InputError on malformed input", () => {
  const good = encodeNpy(new Float32Array([1, 2, 3, 4]), [2, 2]);
  const flipped = good.slice();
  flipped[0] ^= 0xff;
  const versioned = good.slice();
  versioned[6] = 9;
  const bad: Record<string, Uint8Array> = {
    empty: new Uint8Array(0),
    magic: flipped,
    version: versioned,
    truncatedHeader: good.subarray(0, 40),
    truncatedData: good.subarray(0, good.length - 1),
    trailing: new Uint8Array([...good, 0]),
    complex64: withHeader(
      "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
      new Uint8Array(8),
    ),
    bigEndian: withHeader(
      "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
      new Uint8Array(4),
    ),
    fortran: withHeader(
      "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
      new Uint8Array(4),
    ),
    garbage: withHeader(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,",
    ),
    noShape: withHeader("{'descr': '<f4', 'fortran_order': False, }"),
    shapeMismatch: withHeader(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
      new Uint8Array(8),
    ),
  };
  for (const [name, bytes] of Object.entries(bad)) {
    assert.throws(() => decodeNpy(bytes, name), InputError, name);
  }
  // Every single-byte truncation of a valid file is rejected cleanly.
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => decodeNpy(good.subarray(0, n)), InputError);
  }
});

Deno.test("encodeNpy is deterministic and rejects a shape that does not fit the data", () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  assert.deepEqual(encodeNpy(data, [3, 2]), encodeNpy(data, [3, 2]));
  assert.throws(() => encodeNpy(data, [4, 2]), InputError);
});

Deno.test("NpyReader reads rows in chunks and by range without loading the file", async () => {
  await withTempDir(async (dir) => {
    const data = new Float32Array(10 * 4).map((_, i) => i);
    const path = `${dir}/a.npy`;
    await Deno.writeFile(path, encodeNpy(data, [10, 4]));
    {
      using r = await NpyReader.open(path);
      assert.deepEqual([r.dtype, r.shape, r.rows, r.rowSize], [
        "float32",
        [10, 4],
        10,
        4,
      ]);
      const got: number[] = [];
      const starts: number[] = [];
      for await (const { start, data } of r.chunks(3)) {
        starts.push(start);
        got.push(...data as Float32Array);
      }
      assert.deepEqual(starts, [0, 3, 6, 9]);
      assert.deepEqual(got, [...data]);
      assert.deepEqual([...await r.readRows(8, 2)], [...data.subarray(32)]);
      await assert.rejects(r.readRows(9, 2), InputError);
    }
    await Deno.writeFile(path, encodeNpy(data, [10, 4]).subarray(0, 100));
    await assert.rejects(NpyReader.open(path), InputError);
  });
});
