import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { crc32, decodeZip, encodeZip, type ZipEntry } from "./zip.ts";

const text = (s: string) => new TextEncoder().encode(s);
const entries: ZipEntry[] = [
  { name: "arc/data.pkl", data: text("pickle bytes") },
  { name: "arc/data/0", data: new Uint8Array(1000).map((_, i) => i * 7) },
  { name: "arc/empty", data: new Uint8Array(0) },
  { name: "arc/ünïcode.txt", data: text("ok") },
];

Deno.test("crc32 matches the standard check value", () => {
  assert.equal(crc32(text("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("encodeZip round-trips, aligns data and is deterministic", () => {
  const zip = encodeZip(entries, { align: 64 });
  assert.deepEqual(encodeZip(entries, { align: 64 }), zip);
  const back = decodeZip(zip);
  assert.deepEqual([...back.keys()], entries.map((e) => e.name));
  for (const e of entries) assert.deepEqual(back.get(e.name), e.data);
  for (const e of entries.filter((e) => e.data.length > 0)) {
    const at = zip.findIndex((_, i) =>
      e.data.every((b, j) => zip[i + j] === b)
    );
    assert.equal(at % 64, 0, `${e.name} at ${at}`);
  }
});

Deno.test("decodeZip throws InputError on truncated or corrupted archives", () => {
  const zip = encodeZip(entries, { align: 64 });
  assert.throws(() => decodeZip(new Uint8Array(0)), InputError);
  assert.throws(
    () => decodeZip(text("not a zip file at all, just some text here")),
    InputError,
  );
  for (let n = 0; n < zip.length; n += 7) {
    assert.throws(
      () => decodeZip(zip.subarray(0, n)),
      InputError,
      `cut at ${n}`,
    );
  }
  const dataFlip = zip.slice();
  dataFlip[zip.indexOf(7)] ^= 1; // inside arc/data/0
  assert.throws(() => decodeZip(dataFlip), /CRC-32 mismatch/);
  // Flipping any single byte either still decodes or fails with InputError, never anything else.
  for (let i = 0; i < zip.length; i++) {
    const z = zip.slice();
    z[i] ^= 0x5a;
    try {
      decodeZip(z);
    } catch (err) {
      assert.ok(err instanceof InputError, `byte ${i}: ${err}`);
    }
  }
});
