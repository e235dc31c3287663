// Builds the page into the Python package's static folder, where the FastAPI app serves it.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { constants, gzipSync } from "node:zlib";
import { defineConfig, type Plugin } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = process.env.CCL_WEB_OUT_DIR ?? resolve(here, "../src/codeconnect/static");
const pyodideDir = resolve(here, "node_modules/pyodide");
const pyodideVersion = (JSON.parse(readFileSync(join(pyodideDir, "package.json"), "utf8")) as { version: string })
  .version;
// The folder name carries the version, so the server can cache these unhashed files for a long time.
const pyodideBase = `/pyodide-${pyodideVersion}/`;
// Only what loadPyodide needs for the standard library: no packages, nothing fetched from elsewhere.
const pyodideFiles = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"];

function copyPyodide(): Plugin {
  return {
    name: "ccl-copy-pyodide",
    apply: "build",
    writeBundle() {
      const target = join(outDir, pyodideBase);
      mkdirSync(target, { recursive: true });
      for (const file of pyodideFiles) copyFileSync(join(pyodideDir, file), join(target, file));
    },
  };
}

// The API documentation pages (/docs, /redoc) load Swagger UI and ReDoc from here: the machines are offline. Each
// goes in a folder named with its package's version, so the server can cache these unhashed files for a long time.
const apiDocs: { pkg: string; folder: string; files: string[]; offline?: [string, string] }[] = [
  { pkg: "swagger-ui-dist", folder: "swagger-ui", files: ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"] },
  {
    pkg: "redoc",
    folder: "redoc",
    files: ["bundles/redoc.standalone.js"],
    // ReDoc 2 shows Redocly's logo under its menu, loaded from Redocly's CDN, with no option to leave it out. Given
    // an image that loads nothing, the logo hides itself (ReDoc's own fallback for a failed load); the text stays.
    offline: ["https://cdn.redoc.ly/redoc/logo-mini.svg", "data:,"],
  },
];

function copyApiDocs(): Plugin {
  return {
    name: "ccl-copy-api-docs",
    apply: "build",
    writeBundle() {
      for (const { pkg, folder, files, offline } of apiDocs) {
        const dir = resolve(here, "node_modules", pkg);
        const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string };
        const target = join(outDir, `${folder}-${version}`);
        mkdirSync(target, { recursive: true });
        for (const file of files) copyFileSync(join(dir, file), join(target, basename(file)));
        if (offline) {
          const [remote, local] = offline;
          for (const file of files.filter((f) => f.endsWith(".js"))) {
            const path = join(target, basename(file));
            const text = readFileSync(path, "utf8");
            // A new version may load it differently: stop here rather than build pages that reach the internet.
            if (!text.includes(remote)) throw new Error(`${pkg} ${version}: ${file} no longer has ${remote}; check it`);
            writeFileSync(path, text.replaceAll(remote, local));
          }
        }
      }
    },
  };
}

// Precompressed copies (name.gz) that the server sends to browsers accepting gzip: the page's bytes on the wire
// shrink ~3x and the server spends no CPU compressing per request.
const gzipWorthy = /\.(js|mjs|css|wasm|json|html|svg)$/;

function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

function precompress(): Plugin {
  return {
    name: "ccl-precompress",
    apply: "build",
    closeBundle: {
      order: "post",
      handler() {
        for (const path of files(outDir)) {
          if (!gzipWorthy.test(path) || path.endsWith("index.html")) continue;
          const raw = readFileSync(path);
          const packed = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION });
          if (packed.length < raw.length * 0.9) writeFileSync(`${path}.gz`, packed);
        }
      },
    },
  };
}

// @replit/codemirror-emacs registers its key bindings and commands in top-level calls marked pure, in a package
// marked free of side effects: a production build drops them and emacs mode loads with no keys at all. Unmark
// those calls (and stop the build if a new version changes them, so the fix is not silently lost).
function keepEmacsBindings(): Plugin {
  const marked = "/*@__PURE__*/EmacsHandler.";
  return {
    name: "ccl-keep-emacs-bindings",
    transform(code, id) {
      if (!/[\\/]@replit[\\/]codemirror-emacs[\\/]dist[\\/]index\.js$/.test(id)) return null;
      if (!code.includes(marked)) throw new Error("@replit/codemirror-emacs: key registration changed; check keepEmacsBindings");
      return { code: code.replaceAll(marked, "EmacsHandler."), map: null };
    },
  };
}

export default defineConfig({
  define: { __PYODIDE_BASE__: JSON.stringify(pyodideBase) },
  plugins: [keepEmacsBindings(), copyPyodide(), copyApiDocs(), precompress()],
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    chunkSizeWarningLimit: 2000,
  },
  worker: { format: "es" },
});
