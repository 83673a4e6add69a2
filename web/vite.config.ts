import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

/**
 * Operations dashboard build. `npm run build:web` writes web/dist (served at / by the dashboard
 * module, src/dashboard/module.ts); `npm run dev:web` serves the app with hot reload on :5173 and
 * proxies the platform's public APIs to a platform running on :8080 (`npm start`).
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const target = process.env.URBIS_API ?? 'http://localhost:8080';
const proxied = ['/ngsi-ld', '/kpi', '/rules', '/iot', '/auth', '/live', '/health', '/dashboard-config.json'];

export default defineConfig({
  root,
  base: '/',
  publicDir: 'public',
  resolve: {
    // MapLibre's CSP build: no blob: worker; the worker script is loaded from its own URL
    // (see src/map/maplibre.ts, setWorkerUrl).
    alias: [{ find: /^maplibre-gl$/, replacement: 'maplibre-gl/dist/maplibre-gl-csp.js' }],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    port: 5173,
    proxy: Object.fromEntries(
      proxied.map((p) => [p, { target, changeOrigin: true, ws: false }]),
    ),
  },
  preview: { port: 4173 },
});
