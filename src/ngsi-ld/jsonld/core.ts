/**
 * The NGSI-LD core @context (v1.9), built in: brokers never download it (clause 4.4), and the
 * conformance harness relies on that.
 */
import { readFileSync } from 'node:fs';

export const CORE_CONTEXT_URL = 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld';

/** @vocab of the core context: where undefined terms land. */
export const DEFAULT_VOCAB = 'https://uri.etsi.org/ngsi-ld/default-context/';

/** The core context document as published ({"@context": {...}}). */
export const CORE_CONTEXT_DOCUMENT: { '@context': Record<string, unknown> } = deepFreeze(
  JSON.parse(readFileSync(new URL('./ngsi-ld-core-context-v1.9.jsonld', import.meta.url), 'utf8')),
);

/**
 * The core local context object. Identity matters: ActiveContext recognises the core by
 * reference, so every path that means "the core" must hand over this very object.
 */
export const CORE_CONTEXT: Readonly<Record<string, unknown>> = CORE_CONTEXT_DOCUMENT['@context'];

// Every published version (and the unversioned alias) resolves to the built-in copy: a request
// naming v1.6 or v1.8 still means "the core", and fetching uri.etsi.org would put an external
// host on the hot path (and fail offline).
// Only the published names (ngsi-ld-core-context.jsonld, ...-v1.9.jsonld): any other document
// under uri.etsi.org is not the core and must be fetched (and fail) like any remote @context.
const CORE_URL_RE = /^https?:\/\/uri\.etsi\.org\/ngsi-ld\/v1\/ngsi-ld-core-context(-v\d+(\.\d+){0,2})?\.jsonld$/;

export function isCoreContextUrl(url: string): boolean {
  return CORE_URL_RE.test(url);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
