// Bundle the cards into one ES module the integration serves and the hub's dashboard into
// the script and stylesheet the hub serves, or (--tests) the unit tests into plain
// JavaScript for Node's test runner: Debian's Node runs no TypeScript itself.
//
//   node build.mjs            custom_components/edge_ems/frontend/edge-ems-cards.js
//                             src/edge_ems/hub/api/static/dashboard.{js,css}
//   node build.mjs --tests    .test-build/*.test.mjs
//
// The bundles are committed (HACS installs the integration's folder as the repository holds
// it; the hub's wheel carries its static folder and is built without node), so the build is
// deterministic and rewrites a file only when its bytes change.

import { readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.dirname(here);
const BUNDLE = path.join(repo, "custom_components", "edge_ems", "frontend", "edge-ems-cards.js");
const HUB = path.join(repo, "src", "edge_ems", "hub", "api", "static");
const TESTS = path.join(here, ".test-build");

const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  charset: "utf8",
  logLevel: "warning",
  loader: { ".css": "text" },
};

/** Build one entry point into `target`, with a banner naming what it bundles. */
async function bundle(entry, target, title, options = {}) {
  const result = await esbuild.build({
    ...common,
    entryPoints: [entry],
    minify: true,
    legalComments: "eof",
    write: false,
    metafile: true,
    ...options,
  });
  const [output] = result.outputFiles;
  const contents = Buffer.concat([
    Buffer.from(await banner(result.metafile, title)),
    output.contents,
  ]);
  const relative = path.relative(repo, target);
  const current = await readFile(target).catch(() => null);
  if (current && Buffer.compare(current, contents) === 0) {
    console.log(`${relative}: up to date (${contents.length} bytes)`);
    return;
  }
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, contents);
  console.log(`${relative}: written (${contents.length} bytes); commit it with its sources`);
}

async function buildCards() {
  await bundle(path.join(here, "src", "index.ts"), BUNDLE, "Edge EMS cards");
}

async function buildHub() {
  await bundle(
    path.join(here, "src", "hub", "main.ts"),
    path.join(HUB, "dashboard.js"),
    "Edge EMS hub dashboard",
  );
  // The stylesheet: uPlot's and the flow diagram's, bundled into one file (no @import at run time).
  await bundle(
    path.join(here, "src", "hub", "dashboard.css"),
    path.join(HUB, "dashboard.css"),
    "Edge EMS hub dashboard",
    {
      loader: {},
      format: undefined,
    },
  );
}

/** The packages bundled, each with its version, licence and author, as their licences ask
 * (not every one marks its notice for esbuild to keep). */
async function banner(metafile, title) {
  const names = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) names.add(match[1]);
  }
  const lines = [];
  for (const name of [...names].sort()) {
    const meta = JSON.parse(
      await readFile(path.join(here, "node_modules", name, "package.json"), "utf8"),
    );
    const author = typeof meta.author === "object" ? meta.author.name : meta.author;
    lines.push(` * ${name} ${meta.version}: ${meta.license}, ${author}`);
  }
  return `/*! ${title} (frontend/ in the Edge EMS repository). Bundled:\n${lines.join("\n")}\n */\n`;
}

async function buildTests() {
  const folder = path.join(here, "test");
  const entryPoints = (await readdir(folder))
    .filter((name) => name.endsWith(".test.ts"))
    .map((name) => path.join(folder, name));
  await rm(TESTS, { recursive: true, force: true });
  await esbuild.build({
    ...common,
    entryPoints,
    platform: "node",
    outdir: TESTS,
    outExtension: { ".js": ".mjs" },
    sourcemap: "inline",
    packages: "external",
  });
}

if (process.argv.includes("--tests")) {
  await buildTests();
} else {
  await buildCards();
  await buildHub();
}
