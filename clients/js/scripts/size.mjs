#!/usr/bin/env node
// The size budget (issue 14): bundles the browser entry with esbuild (minified, ESM, for browsers) and
// reads the metafile. The SDK's own code must be ≤ 25 KB gzipped, the main chunk with libsodium
// ≤ 215 KB gzipped. Prints the sizes and "N passed, N failed"; exits non-zero over budget.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const OWN_BUDGET = 25 * 1024;
const MAIN_BUDGET = 215 * 1024;
const work = await mkdtemp(join(tmpdir(), "sealpost-size-"));
const entry = join(work, "app.js");
// What an application imports: the whole public API of the browser entry.
await writeFile(entry, `export * from ${JSON.stringify(join(pkg, "dist/index.js"))};\n`);

async function bundle(name, external) {
  const out = join(work, `${name}.js`);
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: out,
    metafile: true,
    external,
    // No top-level await anywhere in what an application bundles (esbuild refuses to build it).
    supported: { "top-level-await": false },
    logLevel: "error",
  });
  const code = await readFile(out);
  const nodeImports = Object.values(result.metafile.inputs).flatMap((i) =>
    i.imports.filter((x) => x.path.startsWith("node:")),
  );
  return {
    raw: code.length,
    gz: gzipSync(code, { level: 9 }).length,
    meta: result.metafile,
    nodeImports,
  };
}

const main = await bundle("main", []);
const own = await bundle("own", ["libsodium-wrappers-sumo", "libsodium-sumo"]);
const ownInputs = Object.keys(own.meta.inputs).filter((p) => !p.includes("node_modules"));
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(
  `SDK's own code:          ${kb(own.raw)} minified, ${kb(own.gz)} gzipped (budget ${kb(OWN_BUDGET)}), ${ownInputs.length} modules`,
);
console.log(
  `main chunk with libsodium: ${kb(main.raw)} minified, ${kb(main.gz)} gzipped (budget ${kb(MAIN_BUDGET)})`,
);
let passed = 0;
let failed = 0;
const check = (ok, what) => {
  if (ok) passed++;
  else {
    failed++;
    console.log(`FAIL ${what}`);
  }
};
check(own.gz <= OWN_BUDGET, `the SDK's own code is ${kb(own.gz)} gzipped, over ${kb(OWN_BUDGET)}`);
check(main.gz <= MAIN_BUDGET, `the main chunk is ${kb(main.gz)} gzipped, over ${kb(MAIN_BUDGET)}`);
check(
  main.nodeImports.length === 0,
  `the browser bundle imports ${main.nodeImports.map((x) => x.path).join(", ")}`,
);
await rm(work, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
