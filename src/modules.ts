import type { UrbisModule } from './platform.ts';

/**
 * Platform modules in start order. The broker core is always present (started by src/server);
 * each layer adds itself here with one line.
 */
export const modules: UrbisModule[] = [];
