// Interop with the Python reference packages (numpy, torch, safetensors,
// zipfile): these start Python, so they run in the end-to-end suite.
import assert from "node:assert/strict";
import { py, withTempDir } from "./helpers.ts";
import { InputError } from "../lib/errors.ts";
import { decodeZip, encodeZip, type ZipEntry } from "../lib/io/zip.ts";

const text = (s: string) => new TextEncoder().encode(s);
const entries: ZipEntry[] = [
  { name: "arc/data.pkl", data: text("pickle bytes") },
  { name: "arc/data/0", data: new Uint8Array(1000).map((_, i) => i * 7) },
  { name: "arc/empty", data: new Uint8Array(0) },
  { name: "arc/ünïcode.txt", data: text("ok") },
];

Deno.test("python zipfile reads our archive and its CRCs check out", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/a.zip`, encodeZip(entries, { align: 64 }));
    const out = await py(
      `
import sys, json, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
print(json.dumps({i.filename: [i.compress_type, list(i.date_time), len(z.read(i))] for i in z.infolist()}))
`,
      `${dir}/a.zip`,
    );
    assert.deepEqual(JSON.parse(out), {
      "arc/data.pkl": [0, [1980, 1, 1, 0, 0, 0], 12],
      "arc/data/0": [0, [1980, 1, 1, 0, 0, 0], 1000],
      "arc/empty": [0, [1980, 1, 1, 0, 0, 0], 0],
      "arc/ünïcode.txt": [0, [1980, 1, 1, 0, 0, 0], 2],
    });
  });
});

Deno.test("decodeZip reads stored and deflate entries written by python", async () => {
  await withTempDir(async (dir) => {
    await py(
      `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
  z.writestr("stored.txt", "hello " * 100, compress_type=zipfile.ZIP_STORED)
  z.writestr("deflated.txt", "hello " * 100, compress_type=zipfile.ZIP_DEFLATED)
  z.writestr("empty", b"", compress_type=zipfile.ZIP_DEFLATED)
  z.comment = b"a trailing comment"
`,
      `${dir}/p.zip`,
    );
    const bytes = await Deno.readFile(`${dir}/p.zip`);
    const back = decodeZip(bytes);
    const dec = (n: string) => new TextDecoder().decode(back.get(n));
    assert.equal(dec("stored.txt"), "hello ".repeat(100));
    assert.equal(dec("deflated.txt"), "hello ".repeat(100));
    assert.equal(back.get("empty")?.length, 0);
    // Corrupt deflate streams and headers fail cleanly too.
    for (let i = 0; i < bytes.length; i++) {
      const z = bytes.slice();
      z[i] ^= 0xa5;
      try {
        decodeZip(z);
      } catch (err) {
        assert.ok(err instanceof InputError, `byte ${i}: ${err}`);
      }
    }
  });
});
