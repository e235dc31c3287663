// Runs inside the sandbox: turns main.ts into main.js by removing types (no type checking, like the browser).
"use strict";
const fs = require("fs");
const { transform } = require("sucrase");

const [src, out] = process.argv.slice(2);
try {
  const code = fs.readFileSync(src, "utf8");
  const result = transform(code, { transforms: ["typescript", "imports"], filePath: src });
  fs.writeFileSync(out, result.code);
} catch (err) {
  process.stderr.write(`${src}: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(1);
}
