export {
  ActiveContext, coreActiveContext, isAbsoluteIri, isKeyword,
  type ActiveContextOptions, type ContextDefinition, type TermDefinition,
} from './active-context.ts';
export { CORE_CONTEXT, CORE_CONTEXT_DOCUMENT, CORE_CONTEXT_URL, DEFAULT_VOCAB, isCoreContextUrl } from './core.ts';
export {
  ContextLoader, LD_CONTEXT_NOT_AVAILABLE_STATUS, Lru, contextNotAvailable,
  type ContextHooks, type ContextLoaderOptions, type ContextReference, type ResolveOptions,
} from './loader.ts';
export {
  CONTEXT_KINDS, CORE_LOCAL_ID, ContextRegistry, InMemoryContextStore,
  type ContextDetails, type ContextKind, type ContextRecord, type ContextRegistryOptions, type ContextStore, type TenantOption,
} from './registry.ts';
