// Interop with the Python reference packages (numpy, torch, safetensors,
// zipfile): these start Python, so they run in the end-to-end suite.
import assert from "node:assert/strict";
import { py, withTempDir } from "./helpers.ts";
import { sha256Hex } from "../lib/io/atomic.ts";
import {
  decodeNpy,
  encodeNpy,
  NpyReader,
  NpyRowFile,
  NpyWriter,
} from "../lib/io/npy.ts";

Deno.test("encodeNpy writes the same bytes as numpy.save and numpy.load reads them back", async () => {
  await withTempDir(async (dir) => {
    const cases = {
      f4: encodeNpy(new Float32Array([1.5, -2, 3.25, 0, 1e-8, 7]), [2, 3]),
      f8: encodeNpy(new Float64Array([Math.PI]), []),
      i4: encodeNpy(new Int32Array([-1, 2, 3]), [3]),
      i8: encodeNpy(new BigInt64Array([-(2n ** 40n), 5n]), [2, 1]),
      u1: encodeNpy(new Uint8Array([0, 255]), [2]),
      b1: encodeNpy(new Uint8Array([1, 0, 1, 1]), [2, 2], { dtype: "bool" }),
      empty: encodeNpy(new Float32Array(0), [0, 16]),
      wide: encodeNpy(new Float32Array(1000 * 3), [1000, 3]),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      await Deno.writeFile(`${dir}/${name}.npy`, bytes);
    }
    const out = await py(
      `
import sys, io, json, numpy as np
d = sys.argv[1]
ref = dict(
  f4=np.array([1.5, -2, 3.25, 0, 1e-8, 7], dtype=np.float32).reshape(2, 3),
  f8=np.array(np.pi),
  i4=np.array([-1, 2, 3], dtype=np.int32),
  i8=np.array([[-(2**40)], [5]], dtype=np.int64),
  u1=np.array([0, 255], dtype=np.uint8),
  b1=np.array([[True, False], [True, True]]),
  empty=np.zeros((0, 16), dtype=np.float32),
  wide=np.zeros((1000, 3), dtype=np.float32),
)
res = {}
for k, a in ref.items():
  b = io.BytesIO(); np.save(b, a)
  ours = open(f"{d}/{k}.npy", "rb").read()
  loaded = np.load(f"{d}/{k}.npy")
  res[k] = [b.getvalue() == ours, loaded.dtype == a.dtype and loaded.shape == a.shape and bool((loaded == a).all())]
print(json.dumps(res))
`,
      dir,
    );
    const res = JSON.parse(out);
    for (const name of Object.keys(cases)) {
      assert.deepEqual(res[name], [true, true], name);
    }
  });
});

Deno.test("decodeNpy reads files numpy wrote, in format versions 1.0, 2.0 and 3.0", async () => {
  await withTempDir(async (dir) => {
    await py(
      `
import sys, numpy as np
from numpy.lib import format as F
d = sys.argv[1]
np.save(f"{d}/f4.npy", np.arange(12, dtype=np.float32).reshape(3, 4) / 8)
np.save(f"{d}/f8.npy", np.array([1e300, -0.5]))
np.save(f"{d}/i8.npy", np.array([[1, -2**62]], dtype=np.int64))
np.save(f"{d}/i4.npy", np.array([7, -7], dtype=np.int32))
np.save(f"{d}/u1.npy", np.array([3, 200], dtype=np.uint8))
np.save(f"{d}/b1.npy", np.array([True, False, True]))
np.save(f"{d}/scalar.npy", np.float32(2.5))
for v in [(2, 0), (3, 0)]:
  with open(f"{d}/v{v[0]}.npy", "wb") as f:
    F.write_array(f, np.arange(6, dtype=np.float32).reshape(2, 3), version=v)
`,
      dir,
    );
    const read = async (n: string) =>
      decodeNpy(await Deno.readFile(`${dir}/${n}.npy`), n);
    const f4 = await read("f4");
    assert.equal(f4.dtype, "float32");
    assert.deepEqual(f4.shape, [3, 4]);
    assert.deepEqual([...f4.data], Array.from({ length: 12 }, (_, i) => i / 8));
    assert.deepEqual([...(await read("f8")).data], [1e300, -0.5]);
    const i8 = await read("i8");
    assert.deepEqual([i8.dtype, i8.shape, [...i8.data]], ["int64", [1, 2], [
      1n,
      -(2n ** 62n),
    ]]);
    assert.deepEqual([...(await read("i4")).data], [7, -7]);
    assert.deepEqual([...(await read("u1")).data], [3, 200]);
    const b1 = await read("b1");
    assert.deepEqual([b1.dtype, [...b1.data]], ["bool", [1, 0, 1]]);
    const sc = await read("scalar");
    assert.deepEqual([sc.shape, [...sc.data]], [[], [2.5]]);
    for (const v of ["v2", "v3"]) {
      const a = await read(v);
      assert.deepEqual([a.shape, [...a.data]], [[2, 3], [0, 1, 2, 3, 4, 5]], v);
    }
  });
});

Deno.test("NpyWriter streams rows into a file identical to encodeNpy and readable by numpy", async () => {
  await withTempDir(async (dir) => {
    const D = 5;
    const N = 1003;
    const all = new Float32Array(N * D).map((_, i) => Math.sin(i));
    const path = `${dir}/states.npy`;
    const w = await NpyWriter.open(path, D);
    for (let r = 0; r < N; r += 100) {
      await w.writeRows(all.subarray(r * D, Math.min(N, r + 100) * D));
    }
    assert.equal(w.rows, N);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound); // nothing visible before close
    const sha = await w.close();
    const bytes = await Deno.readFile(path);
    assert.deepEqual(bytes, encodeNpy(all, [N, D]));
    assert.equal(sha, sha256Hex(bytes));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
      "states.npy",
    ]);
    const out = await py(
      "import sys, numpy as np; a = np.load(sys.argv[1]); print(a.shape, a.dtype, float(a[1002, 4]))",
      path,
    );
    assert.equal(
      out.trim(),
      `(${N}, ${D}) float32 ${Math.fround(Math.sin(N * D - 1))}`,
    );

    const empty = await NpyWriter.open(`${dir}/empty.npy`, 3);
    await empty.close();
    assert.deepEqual(
      await Deno.readFile(`${dir}/empty.npy`),
      encodeNpy(new Float32Array(0), [0, 3]),
    );

    const aborted = await NpyWriter.open(`${dir}/aborted.npy`, 3);
    await aborted.writeRows(new Float32Array(3));
    await aborted.abort();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "empty.npy",
      "states.npy",
    ]);
  });
});

Deno.test("float16 .npy files: encodeNpy matches numpy.save, NpyReader reads rows numpy wrote", async () => {
  await withTempDir(async (dir) => {
    const values = new Float16Array([0.1, -2.5, 65504, 1e-5, 3, 7]);
    await Deno.writeFile(`${dir}/ours.npy`, encodeNpy(values, [3, 2]));
    await py(
      `
import sys, io, numpy as np
d = sys.argv[1]
a = np.array([0.1, -2.5, 65504, 1e-5, 3, 7], dtype=np.float16).reshape(3, 2)
b = io.BytesIO(); np.save(b, a)
assert b.getvalue() == open(f"{d}/ours.npy", "rb").read()
np.save(f"{d}/theirs.npy", a[::-1].copy())
`,
      dir,
    );
    using r = await NpyReader.open(`${dir}/theirs.npy`);
    assert.equal(r.dtype, "float16");
    // numpy's rows reversed: rows 1..2 are the original rows 1 and 0.
    assert.deepEqual([...await r.readRows(1, 2)], [
      ...values.subarray(2, 4),
      ...values.subarray(0, 2),
    ]);
  });
});

Deno.test("NpyRowFile writes rows anywhere, moves them up, cuts the file and matches numpy", async () => {
  await withTempDir(async (dir) => {
    const D = 3;
    const rows = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);
    const f = await NpyRowFile.open(`${dir}/a.npy`, D, "float32", 6);
    await f.writeRows(4, rows(40, 41, 42, 50, 51, 52));
    await f.writeRows(0, rows(0, 1, 2));
    await f.writeRows(2, rows(20, 21, 22));
    // Rows 1 and 3 are gaps: move 2 up to 1, then 4..5 up to 2..3.
    await f.moveRows(2, 1, 1);
    await f.moveRows(4, 2, 2);
    const sha = await f.close(4);
    const bytes = await Deno.readFile(`${dir}/a.npy`);
    assert.equal(sha, sha256Hex(bytes));
    assert.deepEqual(
      bytes,
      encodeNpy(
        new Float32Array([0, 1, 2, 20, 21, 22, 40, 41, 42, 50, 51, 52]),
        [4, D],
      ),
    );
    const half = await NpyRowFile.open(`${dir}/h.npy`, 2, "float16", 2);
    await half.writeRows(1, new Uint8Array(new Float16Array([1.5, -2]).buffer));
    await half.close(2);
    const out = await py(
      `import sys, numpy as np; a = np.load(sys.argv[1]); print(a.dtype, a.tolist())`,
      `${dir}/h.npy`,
    );
    assert.equal(out.trim(), "float16 [[0.0, 0.0], [1.5, -2.0]]");
    const aborted = await NpyRowFile.open(`${dir}/b.npy`, D, "float32", 1000);
    await aborted.abort();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "a.npy",
      "h.npy",
    ]);
  });
});
