/**
 * MapLibre GL, CSP build (aliased in vite.config.ts): the worker is a separate file whose URL Vite
 * emits, so no blob: worker is needed and the app runs under a strict Content-Security-Policy.
 */
import workerUrl from 'maplibre-gl/dist/maplibre-gl-csp-worker.js?url';
import * as maplibregl from 'maplibre-gl';
import 'maplibre-gl/dist/maplibre-gl.css';

maplibregl.setWorkerUrl(workerUrl);

export { maplibregl };
