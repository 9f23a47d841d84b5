// The build `sealpost serve` embeds: hashed assets under /assets, no inline script (the CSP allows none).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  logLevel: "warn",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1024,
    reportCompressedSize: false,
  },
});
