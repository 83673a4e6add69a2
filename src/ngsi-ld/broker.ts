import { ProblemError } from '../common/problem.ts';
import type { Db } from '../store/db.ts';
import type { ChangeBus, ChangeEvent } from '../bus/change-bus.ts';
import type { BatchResult, BrokerApi, ContextRef, QueryParams, QueryResult, Format } from './broker-api.ts';
import type { AttrInstance, StoredEntity, TermResolver } from './model/types.ts';
import { INSTANCE_CORE_KEYS } from './model/types.ts';
import { normalizeEntity, normalizeAttrs, normalizeInstance, normalizeTypes, expandAttrName, isObject, NGSI_NULL } from './model/normalize.ts';
import { renderEntity, type RenderOptions } from './model/render.ts';
import { checkEntityId } from './model/ids.ts';
import { EntityRepository } from './repository/entities.ts';
import { buildQuery, type CompiledQuery } from './query-plan.ts';

/** Resolves a request's @context reference to a term resolver (cached by the jsonld layer). */
export interface ContextResolver {
  resolve(ref: ContextRef): Promise<TermResolver>;
}

export interface UpdateResult {
  updated: string[];
  notUpdated: { attributeName: string; reason: string }[];
}

type Problem = BatchResult['errors'][number]['error'];

const nowIso = () => new Date().toISOString();

/**
 * The broker core: NGSI-LD operations over the stored form. Each operation validates everything
 * first, writes in one transaction, then publishes change events; a rejected request changes nothing.
 */
export class Broker implements BrokerApi {
  readonly repo: EntityRepository;
  constructor(
    readonly db: Db,
    readonly bus: ChangeBus,
    readonly contexts: ContextResolver,
    readonly limits: { maxLimit: number; defaultLimit: number } = { maxLimit: 1000, defaultLimit: 20 },
  ) {
    this.repo = new EntityRepository(db);
  }

  // ---------- tenants ----------

  async assertTenant(tenant: string): Promise<void> {
    if (!(await this.repo.tenantExists(tenant)))
      throw new ProblemError('NonexistentTenant', `Tenant "${tenant}" does not exist (it is created by the first write with NGSILD-Tenant: ${tenant}).`);
  }

  // ---------- single-entity writes ----------

  async createEntity(tenant: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context);
    await this.createStored(tenant, normalizeEntity(body, ctx, { now: nowIso() }));
  }

  async createStored(tenant: string, e: StoredEntity): Promise<void> {
    const ok = await this.db.tx((db) => this.repo.insertMany(db, tenant, [e]));
    if (!ok.has(e.id)) throw new ProblemError('AlreadyExists', `Entity "${e.id}" already exists.`);
    this.emit([{ tenant, entityId: e.id, types: e.type, kind: 'create', after: e, changedAttrs: Object.keys(e.attrs), at: e.createdAt }]);
  }

  async getStored(tenant: string, id: string): Promise<StoredEntity> {
    checkEntityId(id);
    await this.assertTenant(tenant);
    const e = await this.repo.get(tenant, id);
    if (!e) throw new ProblemError('ResourceNotFound', `Entity "${id}" was not found.`);
    return e;
  }

  async getEntity(tenant: string, id: string, opts: { context?: ContextRef; attrs?: string[]; format?: Format; sysAttrs?: boolean } = {}) {
    try {
      const e = await this.getStored(tenant, id);
      const ctx = await this.contexts.resolve(opts.context);
      return renderEntity(e, ctx, { format: opts.format ?? 'normalized', sysAttrs: opts.sysAttrs, pick: opts.attrs ? new Set(opts.attrs.map((a) => ctx.expandTerm(a))) : undefined });
    } catch (err) {
      if (err instanceof ProblemError && err.kind === 'ResourceNotFound') return null;
      throw err;
    }
  }

  /** Applies `change` to the current entity under a row lock; `change` returns the new entity or null to delete. */
  async modify(
    tenant: string,
    id: string,
    change: (current: StoredEntity, now: string) => { next: StoredEntity; changed: string[]; deleted?: string[] } | null,
    kind: ChangeEvent['kind'] = 'update',
  ): Promise<StoredEntity> {
    checkEntityId(id);
    await this.assertTenant(tenant);
    const now = nowIso();
    let ev: ChangeEvent | undefined;
    const result = await this.db.tx(async (db) => {
      const cur = await this.repo.get(tenant, id, db, true);
      if (!cur) throw new ProblemError('ResourceNotFound', `Entity "${id}" was not found.`);
      const r = change(cur, now);
      if (!r) return cur;
      if (r.changed.length || r.deleted?.length || kind === 'replace') {
        r.next.modifiedAt = now;
        await this.repo.saveMany(db, tenant, [r.next]);
        ev = { tenant, entityId: id, types: r.next.type, kind, before: cur, after: r.next, changedAttrs: r.changed, deletedAttrs: r.deleted, at: now };
      }
      return r.next;
    });
    if (ev) this.emit([ev]);
    return result;
  }

  async replaceEntity(tenant: string, id: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context);
    if (body.id !== undefined && body.id !== id) throw new ProblemError('BadRequestData', `The id in the body ("${String(body.id)}") differs from the id in the URL ("${id}").`);
    const repl = normalizeEntity({ ...body, id }, ctx, { now: nowIso() });
    await this.modify(tenant, id, (cur, now) => {
      repl.createdAt = cur.createdAt;
      repl.modifiedAt = now;
      const names = new Set([...Object.keys(cur.attrs), ...Object.keys(repl.attrs)]);
      return { next: repl, changed: [...names].filter((n) => n in repl.attrs), deleted: [...names].filter((n) => !(n in repl.attrs)) };
    }, 'replace');
  }

  async mergeEntity(tenant: string, id: string, fragment: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context);
    if (fragment.id !== undefined && fragment.id !== id) throw new ProblemError('BadRequestData', `The id in the body ("${String(fragment.id)}") differs from the id in the URL ("${id}").`);
    const frag = normalizeEntity({ ...fragment, id }, ctx, { now: nowIso(), allowNull: true, typeOptional: true });
    await this.modify(tenant, id, (cur, now) => mergeInto(cur, frag, now));
  }

  /** POST /entities/{id}/attrs */
  async appendAttrs(tenant: string, id: string, body: Record<string, unknown>, context: ContextRef, noOverwrite: boolean): Promise<UpdateResult> {
    const ctx = await this.contexts.resolve(context);
    const frag = normalizeEntity({ ...body, id }, ctx, { now: nowIso(), typeOptional: true });
    const res: UpdateResult = { updated: [], notUpdated: [] };
    await this.modify(tenant, id, (cur, now) => {
      const next = clone(cur);
      const changed: string[] = [];
      for (const t of frag.type) if (!next.type.includes(t)) next.type.push(t);
      if (frag.type.length && next.type.length !== cur.type.length) changed.push('@type');
      if (frag.scope) { next.scope = [...new Set([...(next.scope ?? []), ...frag.scope])]; changed.push('scope'); }
      for (const [name, insts] of Object.entries(frag.attrs)) {
        const existing = next.attrs[name] ?? [];
        const out = [...existing];
        let any = false;
        for (const inst of insts) {
          const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
          if (idx >= 0 && noOverwrite) continue;
          stamp(inst, idx >= 0 ? out[idx] : undefined, now);
          if (idx >= 0) out[idx] = inst;
          else out.push(inst);
          any = true;
        }
        if (any) { next.attrs[name] = out; changed.push(name); res.updated.push(ctx.compactIri(name)); }
        else res.notUpdated.push({ attributeName: ctx.compactIri(name), reason: 'Attribute exists and noOverwrite was requested.' });
      }
      return { next, changed };
    });
    return res;
  }

  /** PATCH /entities/{id}/attrs: only attributes that exist are updated (replacing the instance). */
  async updateAttrs(tenant: string, id: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const r = await this.updateAttrsDetailed(tenant, id, body, context);
    if (r.notUpdated.length && !r.updated.length)
      throw new ProblemError('ResourceNotFound', `None of the attributes exist on entity "${id}": ${r.notUpdated.map((n) => n.attributeName).join(', ')}.`);
  }

  async updateAttrsDetailed(tenant: string, id: string, body: Record<string, unknown>, context?: ContextRef): Promise<UpdateResult> {
    const ctx = await this.contexts.resolve(context);
    const attrs = normalizeAttrs({ ...body, id }, ctx, { now: nowIso(), allowNull: true });
    const res: UpdateResult = { updated: [], notUpdated: [] };
    await this.modify(tenant, id, (cur, now) => {
      const next = clone(cur);
      const changed: string[] = [];
      const deleted: string[] = [];
      for (const [name, insts] of Object.entries(attrs)) {
        const existing = next.attrs[name];
        const short = ctx.compactIri(name);
        if (!existing) { res.notUpdated.push({ attributeName: short, reason: 'The attribute does not exist on the entity.' }); continue; }
        const out = [...existing];
        let ok = true;
        for (const inst of insts) {
          const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
          if (idx < 0) { ok = false; continue; }
          if (isNullInstance(inst)) { out.splice(idx, 1); continue; }
          stamp(inst, out[idx], now);
          out[idx] = inst;
        }
        if (!ok) { res.notUpdated.push({ attributeName: short, reason: 'No instance with that datasetId exists.' }); continue; }
        if (out.length) next.attrs[name] = out;
        else { delete next.attrs[name]; deleted.push(name); }
        changed.push(name);
        res.updated.push(short);
      }
      return { next, changed, deleted };
    });
    return res;
  }

  /** PATCH /entities/{id}/attrs/{attr}: merge the given members into the existing instance. */
  async partialAttrUpdate(tenant: string, id: string, attrName: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context);
    const iri = expandAttrName(attrName, ctx);
    if (!isObject(body)) throw new ProblemError('BadRequestData', 'The attribute fragment must be a JSON object.');
    const ds = body.datasetId as string | undefined;
    await this.modify(tenant, id, (cur, now) => {
      const insts = cur.attrs[iri];
      const idx = insts ? insts.findIndex((x) => (x.datasetId ?? '') === (ds ?? '')) : -1;
      if (!insts || idx < 0) throw new ProblemError('ResourceNotFound', `Attribute "${attrName}"${ds ? ` with datasetId "${ds}"` : ''} was not found on entity "${id}".`);
      const old = insts[idx];
      const merged = { ...renderPlain(old), ...body };
      if (body.type === undefined) merged.type = old.type;
      const inst = normalizeInstance(attrName, merged, ctx, { now, allowNull: true }, true);
      mergeSubAttrs(inst, old, body, ctx);
      stamp(inst, old, now);
      const next = clone(cur);
      next.attrs[iri] = insts.map((x, i) => (i === idx ? inst : x));
      return { next, changed: [iri] };
    });
  }

  /** PUT /entities/{id}/attrs/{attr}: replace the attribute (instance with the body's datasetId). */
  async replaceAttr(tenant: string, id: string, attrName: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context);
    const iri = expandAttrName(attrName, ctx);
    const inst = normalizeInstance(attrName, body, ctx, { now: nowIso() }, true);
    await this.modify(tenant, id, (cur, now) => {
      const insts = cur.attrs[iri];
      const idx = insts ? insts.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? '')) : -1;
      if (!insts || idx < 0) throw new ProblemError('ResourceNotFound', `Attribute "${attrName}" was not found on entity "${id}".`);
      stamp(inst, insts[idx], now);
      const next = clone(cur);
      next.attrs[iri] = insts.map((x, i) => (i === idx ? inst : x));
      return { next, changed: [iri] };
    });
  }

  async deleteAttr(tenant: string, id: string, attrName: string, context: ContextRef, opts: { datasetId?: string; deleteAll?: boolean }): Promise<void> {
    const ctx = await this.contexts.resolve(context);
    const iri = expandAttrName(attrName, ctx);
    await this.modify(tenant, id, (cur) => {
      const insts = cur.attrs[iri];
      if (!insts) throw new ProblemError('ResourceNotFound', `Attribute "${attrName}" was not found on entity "${id}".`);
      const keep = opts.deleteAll ? [] : insts.filter((x) => (x.datasetId ?? '') !== (opts.datasetId ?? ''));
      if (keep.length === insts.length)
        throw new ProblemError('ResourceNotFound', `Attribute "${attrName}" has no ${opts.datasetId ? `instance with datasetId "${opts.datasetId}"` : 'default instance'} on entity "${id}".`);
      const next = clone(cur);
      if (keep.length) next.attrs[iri] = keep;
      else delete next.attrs[iri];
      return { next, changed: keep.length ? [iri] : [], deleted: keep.length ? [] : [iri] };
    });
  }

  async deleteEntity(tenant: string, id: string): Promise<void> {
    checkEntityId(id);
    await this.assertTenant(tenant);
    const gone = await this.db.tx((db) => this.repo.deleteMany(db, tenant, [id]));
    if (!gone.length) throw new ProblemError('ResourceNotFound', `Entity "${id}" was not found.`);
    this.emitDeletes(tenant, gone);
  }

  private emitDeletes(tenant: string, gone: StoredEntity[]) {
    const at = nowIso();
    this.emit(gone.map((e) => ({ tenant, entityId: e.id, types: e.type, kind: 'delete' as const, before: e, changedAttrs: [], deletedAttrs: Object.keys(e.attrs), at })));
  }

  // ---------- batch operations ----------

  /** Normalises each item independently: invalid ones become errors, valid ones go on. */
  private async normalizeBatch(body: unknown, ctxRef: ContextRef, perItemContext: boolean, opts: { allowNull?: boolean; typeOptional?: boolean } = {}) {
    if (!Array.isArray(body)) throw new ProblemError('BadRequestData', 'A batch operation body must be a JSON array of entities.');
    const ok: StoredEntity[] = [];
    const errors: BatchResult['errors'] = [];
    const now = nowIso();
    const seen = new Set<string>();
    for (const item of body) {
      const rawId = isObject(item) ? String(item.id ?? item['@id'] ?? '') : '';
      try {
        const ref = perItemContext && isObject(item) && item['@context'] !== undefined ? (item['@context'] as ContextRef) : ctxRef;
        const ctx = await this.contexts.resolve(ref);
        const e = normalizeEntity(item, ctx, { now, ...opts });
        ok.push(e);
        seen.add(e.id);
      } catch (err) {
        errors.push({ entityId: rawId, error: toProblem(err) });
      }
    }
    return { ok, errors };
  }

  async batchCreate(tenant: string, body: unknown, ctxRef: ContextRef, perItemContext = false): Promise<BatchResult> {
    const { ok, errors } = await this.normalizeBatch(body, ctxRef, perItemContext);
    const firstOf = dedupeFirst(ok, errors, 'Entity listed twice in the same batch.');
    const inserted = await this.db.tx((db) => this.repo.insertMany(db, tenant, firstOf));
    const success: string[] = [];
    const evs: ChangeEvent[] = [];
    for (const e of firstOf) {
      if (inserted.has(e.id)) {
        success.push(e.id);
        evs.push({ tenant, entityId: e.id, types: e.type, kind: 'create', after: e, changedAttrs: Object.keys(e.attrs), at: e.createdAt });
      } else errors.push({ entityId: e.id, error: new ProblemError('AlreadyExists', `Entity "${e.id}" already exists.`).toProblem() as Problem });
    }
    this.emit(evs);
    return { success, errors };
  }

  async upsertEntities(tenant: string, entities: Record<string, unknown>[], opts: { context?: ContextRef; mode?: 'replace' | 'update' } = {}): Promise<BatchResult> {
    return this.batchUpsert(tenant, entities, opts.context, opts.mode ?? 'replace', false);
  }

  /** entityOperations/upsert: create missing entities; existing ones are replaced or updated (options=update). */
  async batchUpsert(tenant: string, body: unknown, ctxRef: ContextRef, mode: 'replace' | 'update', perItemContext = false): Promise<BatchResult & { created: string[] }> {
    const { ok, errors } = await this.normalizeBatch(body, ctxRef, perItemContext);
    const merged = mergeDuplicates(ok);
    const created: string[] = [];
    const evs: ChangeEvent[] = [];
    await this.db.tx(async (db) => {
      const existing = await this.repo.getMany(tenant, merged.map((e) => e.id), db, true);
      const toSave: StoredEntity[] = [];
      for (const e of merged) {
        const cur = existing.get(e.id);
        if (!cur) {
          toSave.push(e);
          created.push(e.id);
          evs.push({ tenant, entityId: e.id, types: e.type, kind: 'create', after: e, changedAttrs: Object.keys(e.attrs), at: e.createdAt });
          continue;
        }
        let next: StoredEntity;
        if (mode === 'replace') {
          next = { ...e, createdAt: cur.createdAt };
        } else {
          next = clone(cur);
          for (const t of e.type) if (!next.type.includes(t)) next.type.push(t);
          for (const [name, insts] of Object.entries(e.attrs)) {
            const out = [...(next.attrs[name] ?? [])];
            for (const inst of insts) {
              const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
              stamp(inst, idx >= 0 ? out[idx] : undefined, e.modifiedAt);
              if (idx >= 0) out[idx] = inst;
              else out.push(inst);
            }
            next.attrs[name] = out;
          }
        }
        next.modifiedAt = e.modifiedAt;
        toSave.push(next);
        evs.push({ tenant, entityId: e.id, types: next.type, kind: mode === 'replace' ? 'replace' : 'update', before: cur, after: next, changedAttrs: Object.keys(e.attrs), deletedAttrs: mode === 'replace' ? Object.keys(cur.attrs).filter((a) => !(a in e.attrs)) : undefined, at: e.modifiedAt });
      }
      await this.repo.saveMany(db, tenant, toSave);
    });
    this.emit(evs);
    return { success: merged.map((e) => e.id), errors, created };
  }

  /** entityOperations/update: update attributes of existing entities (options=noOverwrite keeps existing ones). */
  async batchUpdate(tenant: string, body: unknown, ctxRef: ContextRef, noOverwrite: boolean, perItemContext = false): Promise<BatchResult> {
    const { ok, errors } = await this.normalizeBatch(body, ctxRef, perItemContext, { typeOptional: true });
    return this.batchApply(tenant, ok, errors, (cur, e, now) => {
      const next = clone(cur);
      for (const t of e.type) if (!next.type.includes(t)) next.type.push(t);
      for (const [name, insts] of Object.entries(e.attrs)) {
        const out = [...(next.attrs[name] ?? [])];
        for (const inst of insts) {
          const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
          if (idx >= 0 && noOverwrite) continue;
          stamp(inst, idx >= 0 ? out[idx] : undefined, now);
          if (idx >= 0) out[idx] = inst;
          else out.push(inst);
        }
        next.attrs[name] = out;
      }
      return { next, changed: Object.keys(e.attrs) };
    });
  }

  async batchMerge(tenant: string, body: unknown, ctxRef: ContextRef, perItemContext = false): Promise<BatchResult> {
    const { ok, errors } = await this.normalizeBatch(body, ctxRef, perItemContext, { allowNull: true, typeOptional: true });
    return this.batchApply(tenant, ok, errors, (cur, e, now) => mergeInto(cur, e, now));
  }

  private async batchApply(
    tenant: string,
    ok: StoredEntity[],
    errors: BatchResult['errors'],
    apply: (cur: StoredEntity, frag: StoredEntity, now: string) => { next: StoredEntity; changed: string[]; deleted?: string[] },
  ): Promise<BatchResult> {
    const success: string[] = [];
    const evs: ChangeEvent[] = [];
    const now = nowIso();
    if (!(await this.repo.tenantExists(tenant))) {
      for (const e of ok) errors.push({ entityId: e.id, error: notFoundProblem(e.id) });
      return { success, errors };
    }
    await this.db.tx(async (db) => {
      const existing = await this.repo.getMany(tenant, ok.map((e) => e.id), db, true);
      const toSave = new Map<string, StoredEntity>();
      for (const frag of ok) {
        const cur = toSave.get(frag.id) ?? existing.get(frag.id);
        if (!cur) { errors.push({ entityId: frag.id, error: notFoundProblem(frag.id) }); continue; }
        try {
          const r = apply(cur, frag, now);
          r.next.modifiedAt = now;
          toSave.set(frag.id, r.next);
          success.push(frag.id);
          evs.push({ tenant, entityId: frag.id, types: r.next.type, kind: 'update', before: cur, after: r.next, changedAttrs: r.changed, deletedAttrs: r.deleted, at: now });
        } catch (err) {
          errors.push({ entityId: frag.id, error: toProblem(err) });
        }
      }
      await this.repo.saveMany(db, tenant, [...toSave.values()]);
    });
    this.emit(evs);
    return { success: [...new Set(success)], errors };
  }

  async batchDelete(tenant: string, body: unknown): Promise<BatchResult> {
    if (!Array.isArray(body)) throw new ProblemError('BadRequestData', 'entityOperations/delete expects a JSON array of entity ids.');
    const errors: BatchResult['errors'] = [];
    const ids: string[] = [];
    for (const x of body) {
      try {
        ids.push(checkEntityId(x));
      } catch (err) {
        errors.push({ entityId: String(x), error: toProblem(err) });
      }
    }
    const gone = (await this.repo.tenantExists(tenant)) ? await this.db.tx((db) => this.repo.deleteMany(db, tenant, [...new Set(ids)])) : [];
    const goneIds = new Set(gone.map((e) => e.id));
    for (const id of new Set(ids)) if (!goneIds.has(id)) errors.push({ entityId: id, error: notFoundProblem(id) });
    this.emitDeletes(tenant, gone);
    return { success: [...goneIds], errors };
  }

  // ---------- queries ----------

  async queryEntities(tenant: string, params: QueryParams): Promise<QueryResult> {
    const r = await this.query(tenant, params);
    return { entities: r.entities, count: r.count };
  }

  async compile(params: QueryParams): Promise<{ plan: CompiledQuery; ctx: TermResolver }> {
    const ctx = await this.contexts.resolve(params.context);
    return { plan: buildQuery(params, ctx), ctx };
  }

  /** Query with rendering; also returns the stored entities for callers that need them (e.g. geo+json). */
  async query(tenant: string, params: QueryParams): Promise<QueryResult & { stored: StoredEntity[]; ctx: TermResolver }> {
    const limit = params.limit ?? this.limits.defaultLimit;
    if (limit > this.limits.maxLimit)
      throw new ProblemError('TooManyResults', `limit=${limit} exceeds the maximum of ${this.limits.maxLimit} entities per page: page with limit and offset.`);
    const offset = params.offset ?? 0;
    const { plan, ctx } = await this.compile(params);
    if (!(await this.repo.tenantExists(tenant))) throw new ProblemError('NonexistentTenant', `Tenant "${tenant}" does not exist.`);
    let stored: StoredEntity[];
    let count: number | undefined;
    if (plan.post) {
      // exact predicates that SQL cannot express (geometry): filter all candidates, then page
      const all = (await this.repo.select(tenant, plan.where, plan.params)).filter(plan.post);
      if (plan.sort) all.sort(plan.sort);
      count = all.length;
      stored = limit === 0 ? [] : all.slice(offset, offset + limit);
    } else {
      stored = limit === 0 ? [] : await this.repo.select(tenant, plan.where, plan.params, { limit, offset });
      if (params.count) count = await this.repo.count(tenant, plan.where, plan.params);
    }
    const ro: RenderOptions = {
      format: params.format ?? 'normalized',
      sysAttrs: params.sysAttrs,
      pick: plan.pick,
      omit: plan.omit,
      datasetId: params.datasetId ? new Set(params.datasetId) : undefined,
      lang: params.lang,
      keepId: plan.keepId,
      keepType: plan.keepType,
    };
    const entities = stored.map((e) => renderEntity(e, ctx, ro));
    return { entities, count: params.count ? count : undefined, stored, ctx };
  }

  /** DELETE /entities?type=... (purge): deletes every match; returns how many. */
  async purge(tenant: string, params: QueryParams): Promise<number> {
    const { plan } = await this.compile(params);
    await this.assertTenant(tenant);
    let victims = await this.repo.select(tenant, plan.where, plan.params);
    if (plan.post) victims = victims.filter(plan.post);
    if (!victims.length) return 0;
    const gone = await this.db.tx((db) => this.repo.deleteMany(db, tenant, victims.map((e) => e.id)));
    this.emitDeletes(tenant, gone);
    return gone.length;
  }

  render(e: StoredEntity, ctx: TermResolver, o: RenderOptions) {
    return renderEntity(e, ctx, o);
  }

  private emit(evs: ChangeEvent[]) {
    if (evs.length) this.bus.publish(evs);
  }
}

// ---------- helpers ----------

function clone(e: StoredEntity): StoredEntity {
  return { ...e, type: [...e.type], scope: e.scope ? [...e.scope] : undefined, attrs: { ...e.attrs } };
}

/** Keep createdAt of the instance being replaced; set modifiedAt. */
function stamp(inst: AttrInstance, old: AttrInstance | undefined, now: string) {
  inst.createdAt = old?.createdAt ?? now;
  inst.modifiedAt = now;
}

function isNullInstance(i: AttrInstance): boolean {
  return i.value === NGSI_NULL || i.object === NGSI_NULL || i.vocab === NGSI_NULL || (i.languageMap as unknown) === NGSI_NULL || (i.valueList as unknown) === NGSI_NULL || (i.objectList as unknown) === NGSI_NULL;
}

/** Merge-patch semantics (clause 5.6.17): NGSI-LD Null deletes, instances are merged member by member. */
function mergeInto(cur: StoredEntity, frag: StoredEntity, now: string) {
  const next = clone(cur);
  const changed: string[] = [];
  const deleted: string[] = [];
  for (const t of frag.type) if (!next.type.includes(t)) next.type.push(t);
  if (frag.scope) next.scope = frag.scope;
  for (const [name, insts] of Object.entries(frag.attrs)) {
    let out = [...(next.attrs[name] ?? [])];
    for (const inst of insts) {
      const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
      if (isNullInstance(inst)) {
        if (idx >= 0) out.splice(idx, 1);
        continue;
      }
      if (idx >= 0) {
        const old = out[idx];
        const m: AttrInstance = { ...old, ...inst };
        for (const k of Object.keys(inst)) {
          const v = inst[k] as AttrInstance | undefined;
          if (!INSTANCE_CORE_KEYS.has(k) && v && typeof v === 'object' && isNullInstance(v)) delete m[k];
        }
        stamp(m, old, now);
        out[idx] = m;
      } else {
        stamp(inst, undefined, now);
        out = [...out, inst];
      }
    }
    if (out.length) { next.attrs[name] = out; changed.push(name); }
    else if (next.attrs[name]) { delete next.attrs[name]; deleted.push(name); }
  }
  return { next, changed, deleted };
}

function mergeSubAttrs(inst: AttrInstance, old: AttrInstance, body: Record<string, unknown>, ctx: TermResolver) {
  for (const k of Object.keys(old)) {
    if (INSTANCE_CORE_KEYS.has(k)) continue;
    if (!(k in inst)) {
      const short = ctx.compactIri(k);
      if (!(short in body)) inst[k] = old[k];
    }
  }
  for (const k of Object.keys(inst)) {
    const v = inst[k] as AttrInstance | undefined;
    if (!INSTANCE_CORE_KEYS.has(k) && v && typeof v === 'object' && isNullInstance(v)) delete inst[k];
  }
}

/** Stored instance -> plain members (for merging a fragment onto it before re-validation). */
function renderPlain(i: AttrInstance): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of ['type', 'value', 'object', 'languageMap', 'json', 'valueList', 'observedAt', 'unitCode', 'datasetId']) if (i[k] !== undefined) o[k] = i[k];
  if (i.objectList) o.objectList = i.objectList;
  return o;
}

function dedupeFirst(ok: StoredEntity[], errors: BatchResult['errors'], why: string): StoredEntity[] {
  const seen = new Set<string>();
  const out: StoredEntity[] = [];
  for (const e of ok) {
    if (seen.has(e.id)) { errors.push({ entityId: e.id, error: new ProblemError('AlreadyExists', `${why} "${e.id}"`).toProblem() as Problem }); continue; }
    seen.add(e.id);
    out.push(e);
  }
  return out;
}

/** Later occurrences of the same id in one upsert batch win (applied in order). */
function mergeDuplicates(ok: StoredEntity[]): StoredEntity[] {
  const m = new Map<string, StoredEntity>();
  for (const e of ok) {
    const prev = m.get(e.id);
    if (!prev) { m.set(e.id, e); continue; }
    m.set(e.id, { ...e, type: [...new Set([...prev.type, ...e.type])], attrs: { ...prev.attrs, ...e.attrs } });
  }
  return [...m.values()];
}

function notFoundProblem(id: string): Problem {
  return new ProblemError('ResourceNotFound', `Entity "${id}" was not found.`).toProblem() as Problem;
}

export function toProblem(err: unknown): Problem {
  if (err instanceof ProblemError) return err.toProblem() as Problem;
  return new ProblemError('InternalError', err instanceof Error ? err.message : String(err)).toProblem() as Problem;
}

export { normalizeTypes };
