// Unit tests of the page's logic that needs no browser (the browser tests live in tests/web, in Python).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
