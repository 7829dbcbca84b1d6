// The console's build: into the Python package, served by the server at /console
// (src/cadenya_server/console/endpoints.py). Hashed names: cached forever, never stale.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/cadenya_server/console/static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2020",
    // One script and one stylesheet: no inline module-preload helper, nothing for a
    // strict Content-Security-Policy to refuse.
    modulePreload: false,
    cssCodeSplit: false,
    reportCompressedSize: false,
  },
});
