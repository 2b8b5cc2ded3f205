// Vite build of the negawatt web app. `base: "/"`: the API serves index.html at `/` and the hashed
// bundles under `/assets/`. `npx vite` (dev) proxies `/v1` to the API named by NEGAWATT_API_URL.
import { defineConfig } from "vite";

const api = process.env.NEGAWATT_API_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: false },
  server: { proxy: { "/v1": { target: api, changeOrigin: false } } },
});
