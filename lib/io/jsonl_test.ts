import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { sha256Hex } from "./atomic.ts";
import { type JsonlRecord, JsonlWriter, readJsonl } from "./jsonl.ts";

/** A fresh temporary directory for `fn`, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function collect(path: string): Promise<JsonlRecord[]> {
  const out: JsonlRecord[] = [];
  for await (const rec of readJsonl(path)) out.push(rec);
  return out;
}

Deno.test("readJsonl yields values with 1-based line numbers, skipping empty lines", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/a.jsonl`;
    await Deno.writeTextFile(
      path,
      '{"id":"a","tokens":[1,2]}\r\n\n[1,"é"]\n42',
    );
    assert.deepEqual(await collect(path), [
      { line: 1, value: { id: "a", tokens: [1, 2] } },
      { line: 3, value: [1, "é"] },
      { line: 4, value: 42 },
    ]);
    await Deno.writeTextFile(path, "");
    assert.deepEqual(await collect(path), []);
  });
});

Deno.test("readJsonl streams a file much larger than one read chunk", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/big.jsonl`;
    const N = 20_000;
    const lines = Array.from(
      { length: N },
      (_, i) => JSON.stringify({ i, pad: "x".repeat(i % 50) }),
    );
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    let n = 0;
    for await (const { line, value } of readJsonl(path)) {
      assert.equal((value as { i: number }).i, line - 1);
      n++;
    }
    assert.equal(n, N);
  });
});

Deno.test("readJsonl names the file and line of invalid JSON", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.jsonl`;
    await Deno.writeTextFile(path, '{"a":1}\n{"a":\n{"a":3}\n');
    await assert.rejects(collect(path), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, new RegExp(`^invalid JSON at ${path}:2 `));
      assert.ok(!err.message.includes("\n"));
      return true;
    });
  });
});

Deno.test("readJsonl reports a truncated last line", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/cut.jsonl`;
    await Deno.writeTextFile(path, '{"a":1}\n{"a":2}\n{"a":[1,2');
    const seen: number[] = [];
    await assert.rejects(
      async () => {
        for await (const { line } of readJsonl(path)) seen.push(line);
      },
      (err: Error) => {
        assert.ok(err instanceof InputError);
        assert.match(
          err.message,
          new RegExp(`^truncated or invalid JSON at ${path}:3; `),
        );
        return true;
      },
    );
    assert.deepEqual(seen, [1, 2]);
  });
});

Deno.test("readJsonl throws InputError for a missing file and invalid UTF-8", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(collect(`${dir}/missing.jsonl`), InputError);
    await Deno.writeFile(
      `${dir}/latin1.jsonl`,
      new Uint8Array([0x22, 0xe9, 0x22, 0x0a]),
    );
    await assert.rejects(collect(`${dir}/latin1.jsonl`), InputError);
  });
});

Deno.test("readJsonl can stop early without leaking the file handle", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/a.jsonl`;
    await Deno.writeTextFile(path, "1\n2\n3\n");
    for await (const { value } of readJsonl(path)) {
      assert.equal(value, 1);
      break;
    }
  });
});

Deno.test("JsonlWriter writes atomically and returns the file's sha256", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/trace.jsonl`;
    const w = await JsonlWriter.open(path);
    const records = Array.from(
      { length: 5000 },
      (_, i) => ({ kind: "step", t: i, s: "é".repeat(i % 20) }),
    );
    for (const r of records) await w.write(r);
    assert.equal(w.lines, 5000);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    const sha = await w.commit();
    const text = await Deno.readTextFile(path);
    assert.equal(text, records.map((r) => JSON.stringify(r) + "\n").join(""));
    assert.equal(sha, sha256Hex(text));
    assert.deepEqual((await collect(path)).map((r) => r.value), records);

    const aborted = await JsonlWriter.open(`${dir}/other.jsonl`);
    await aborted.write({ a: 1 });
    await aborted.abort();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
      "trace.jsonl",
    ]);
  });
});
