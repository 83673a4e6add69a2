import { defineConfig, type Plugin } from 'vite';
import { fileURLToPath } from 'node:url';

/**
 * Operations dashboard build. `npm run build:web` writes web/dist (served at / by the dashboard
 * module, src/dashboard/module.ts); `npm run dev:web` serves the app with hot reload on :5173 and
 * proxies the platform's public APIs to a platform running on :8080 (`npm start`).
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const target = process.env.URBIS_API ?? 'http://localhost:8080';
const proxied = ['/ngsi-ld', '/kpi', '/rules', '/iot', '/auth', '/live', '/health', '/dashboard-config.json'];

/**
 * The map is the first view: its chunk (MapLibre, ~1 MB) is imported dynamically by main.ts, which
 * would only start fetching it once main.js has run. Preload it (and MapLibre's worker script)
 * from index.html so that both download while the shell paints.
 */
function preloadMap(): Plugin {
  return {
    name: 'urbis-preload-map',
    apply: 'build',
    transformIndexHtml: {
      order: 'post',
      handler(_html, ctx) {
        const tags: { tag: string; attrs: Record<string, string>; injectTo: 'head' }[] = [];
        for (const out of Object.values(ctx.bundle ?? {})) {
          if (out.type === 'chunk' && out.isDynamicEntry && out.facadeModuleId?.endsWith('/map/map-view.ts')) {
            tags.push({ tag: 'link', attrs: { rel: 'modulepreload', href: `/${out.fileName}` }, injectTo: 'head' });
            for (const css of out.viteMetadata?.importedCss ?? []) tags.push({ tag: 'link', attrs: { rel: 'preload', as: 'style', href: `/${css}` }, injectTo: 'head' });
          }
          if (out.type === 'asset' && /maplibre-gl-csp-worker.*\.js$/.test(out.fileName)) {
            tags.push({ tag: 'link', attrs: { rel: 'prefetch', href: `/${out.fileName}` }, injectTo: 'head' });
          }
        }
        return tags;
      },
    },
  };
}

export default defineConfig({
  plugins: [preloadMap()],
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
