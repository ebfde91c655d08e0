import assert from "node:assert/strict";
import {
  AtomicWriter,
  Sha256,
  sha256File,
  sha256Hex,
  writeFileAtomic,
} from "./atomic.ts";

/** A fresh temporary directory for `fn`, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const names = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("sha256Hex and Sha256 match known digests", () => {
  const abc =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  assert.equal(sha256Hex("abc"), abc);
  assert.equal(sha256Hex(new TextEncoder().encode("abc")), abc);
  assert.equal(
    new Sha256().update("a").update(new Uint8Array([0x62, 0x63])).hex(),
    abc,
  );
});

Deno.test("writeFileAtomic replaces the file and leaves no temp file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/out.json`;
    await writeFileAtomic(path, "old");
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
    assert.deepEqual(names(dir), ["out.json"]);
  });
});

Deno.test("writeFileAtomic into a missing directory fails and leaves nothing behind", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      writeFileAtomic(`${dir}/nope/out.json`, "x"),
      Deno.errors.NotFound,
    );
    assert.deepEqual(names(dir), []);
  });
});

Deno.test("AtomicWriter streams, patches, commits with the right sha256", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/big.bin`;
    await writeFileAtomic(path, "previous");
    const w = await AtomicWriter.open(path);
    assert.match(
      w.tempPath,
      /\/\.big\.bin\.trminterp-\d+-[0-9a-f]{12}\.tmp$/,
    );
    const chunk = new Uint8Array(300_000).map((_, i) => i & 0xff);
    for (let i = 0; i < 5; i++) await w.write(chunk); // crosses the 1 MiB flush threshold
    assert.equal(w.size, 1_500_000);
    assert.equal(await Deno.readTextFile(path), "previous"); // untouched until commit
    await w.writeAt(10, new Uint8Array([9, 9, 9]));
    const sha = await w.commit();
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, 1_500_000);
    assert.deepEqual([...bytes.subarray(9, 14)], [9, 9, 9, 9, 13]);
    assert.equal(sha, sha256Hex(bytes));
    assert.equal(await sha256File(path), sha);
    assert.deepEqual(names(dir), ["big.bin"]);
    await assert.rejects(w.write("more"));
  });
});

Deno.test("AtomicWriter hashes incrementally when nothing is patched", async () => {
  await withTempDir(async (dir) => {
    const w = await AtomicWriter.open(`${dir}/a.txt`);
    await w.write("hello ");
    const big = new Uint8Array(3 << 20).fill(7); // above the buffer size: written directly
    await w.write(big);
    await w.write("world");
    const expected = new Uint8Array([
      ...new TextEncoder().encode("hello "),
      ...big,
      ...new TextEncoder().encode("world"),
    ]);
    assert.equal(await w.commit(), sha256Hex(expected));
    assert.deepEqual(await Deno.readFile(`${dir}/a.txt`), expected);
  });
});

Deno.test("AtomicWriter abort and await using remove the temp file", async () => {
  await withTempDir(async (dir) => {
    const w = await AtomicWriter.open(`${dir}/a.bin`);
    await w.write("partial");
    await w.abort();
    await w.abort(); // idempotent
    assert.deepEqual(names(dir), []);
    await assert.rejects(async () => {
      await using u = await AtomicWriter.open(`${dir}/b.bin`);
      await u.write("partial");
      throw new Error("boom");
    }, /boom/);
    assert.deepEqual(names(dir), []);
    const v = await AtomicWriter.open(`${dir}/c.bin`);
    await v.write("ab");
    await assert.rejects(v.writeAt(1, new Uint8Array(5)), RangeError);
    await v.abort();
    assert.deepEqual(names(dir), []);
  });
});
