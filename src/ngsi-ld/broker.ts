import { ProblemError } from '../common/problem.ts';
import type { Db } from '../store/db.ts';
import type { ChangeBus, ChangeEvent } from '../bus/change-bus.ts';
import type { BatchResult, BrokerApi, ContextRef, QueryParams, QueryResult, Format } from './broker-api.ts';
import type { AttrInstance, StoredEntity, TermResolver } from './model/types.ts';
import { INSTANCE_CORE_KEYS } from './model/types.ts';
import { normalizeEntity, normalizeInstance, expandAttrName, isObject, NGSI_NULL } from './model/normalize.ts';
import { renderEntity, type RenderOptions } from './model/render.ts';
import { checkEntityId } from './model/ids.ts';
import { EntityRepository } from './repository/entities.ts';
import { EntityCache } from './repository/entity-cache.ts';
import { buildQuery, type CompiledQuery } from './query-plan.ts';
import { loadLinked, renderJoined } from './join.ts';

type ModifyFn = (current: StoredEntity, now: string) => { next: StoredEntity; changed: string[]; deleted?: string[] } | null;

interface PendingModification {
  tenant: string;
  id: string;
  change: ModifyFn;
  kind: ChangeEvent['kind'];
  resolve: (e: StoredEntity) => void;
  reject: (e: unknown) => void;
}

type Outcome = { ok?: StoredEntity; err?: unknown };

/** One entity's queued modifications applied in order: the last version, its events, each caller's outcome. */
interface ModChain {
  cur: StoredEntity;
  evs: ChangeEvent[];
  outs: Map<PendingModification, Outcome>;
}

function applyChain(start: StoredEntity, mods: PendingModification[], now: string): ModChain {
  const c: ModChain = { cur: start, evs: [], outs: new Map() };
  for (const m of mods) {
    try {
      const r = m.change(c.cur, now);
      if (!r) { c.outs.set(m, { ok: c.cur }); continue; }
      r.next.modifiedAt = now;
      c.evs.push({ tenant: m.tenant, entityId: m.id, types: r.next.type, kind: m.kind, before: c.cur, after: r.next, changedAttrs: r.changed, deletedAttrs: r.deleted, at: now });
      c.outs.set(m, { ok: r.next });
      c.cur = r.next;
    } catch (err) {
      c.outs.set(m, { err });
    }
  }
  return c;
}

/** A group's modifications per entity (tenant + id), each list in arrival order. */
function byEntity(batch: PendingModification[]): Map<string, PendingModification[]> {
  const m = new Map<string, PendingModification[]>();
  for (const x of batch) {
    const k = x.tenant + '\u0000' + x.id;
    const l = m.get(k);
    if (l) l.push(x);
    else m.set(k, [x]);
  }
  return m;
}

/** Resolves a request's @context reference to a term resolver (cached by the jsonld layer). */
export interface ContextResolver {
  /** `tenant`: the request's NGSILD-Tenant, so that the tenant's hosted @contexts resolve locally */
  resolve(ref: ContextRef, options?: { tenant?: string }): Promise<TermResolver>;
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
    readonly limits: { maxLimit: number; defaultLimit: number; cacheSize?: number } = { maxLimit: 1000, defaultLimit: 20 },
  ) {
    this.repo = new EntityRepository(db);
    this.cache = new EntityCache(limits.cacheSize ?? 100_000);
  }
  readonly cache: EntityCache;

  // ---------- tenants ----------

  async assertTenant(tenant: string): Promise<void> {
    if (!(await this.repo.tenantExists(tenant)))
      throw new ProblemError('NonexistentTenant', `Tenant "${tenant}" does not exist (it is created by the first write with NGSILD-Tenant: ${tenant}).`);
  }

  // ---------- single-entity writes ----------

  async createEntity(tenant: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context, { tenant });
    await this.createStored(tenant, normalizeEntity(body, ctx, { now: nowIso() }));
  }

  async createStored(tenant: string, e: StoredEntity): Promise<void> {
    const ok = await this.db.tx((db) => this.repo.insertMany(db, tenant, [e]));
    if (!ok.has(e.id)) throw new ProblemError('AlreadyExists', `Entity "${e.id}" already exists.`);
    await this.emit([{ tenant, entityId: e.id, types: e.type, kind: 'create', after: e, changedAttrs: Object.keys(e.attrs), at: e.createdAt }]);
  }

  async getStored(tenant: string, id: string): Promise<StoredEntity> {
    checkEntityId(id);
    const hit = this.cache.get(tenant, id);
    if (hit && !isExpired(hit)) return hit;
    await this.assertTenant(tenant);
    const e = await this.repo.get(tenant, id);
    if (!e || isExpired(e)) throw new ProblemError('ResourceNotFound', `Entity "${id}" was not found.`);
    this.cache.setIfAbsent(tenant, e);
    return e;
  }

  async getEntity(tenant: string, id: string, opts: { context?: ContextRef; attrs?: string[]; format?: Format; sysAttrs?: boolean } = {}) {
    try {
      const e = await this.getStored(tenant, id);
      const ctx = await this.contexts.resolve(opts.context, { tenant });
      return renderEntity(e, ctx, { format: opts.format ?? 'normalized', sysAttrs: opts.sysAttrs, pick: opts.attrs ? new Set(opts.attrs.map((a) => ctx.expandTerm(a))) : undefined });
    } catch (err) {
      if (err instanceof ProblemError && err.kind === 'ResourceNotFound') return null;
      throw err;
    }
  }

  /**
   * Applies `change` to the current entity under a row lock; `change` returns the new entity (or null
   * for no change). Concurrent calls are grouped: every modification queued while a transaction is
   * running goes into the next one (one lock query, one write statement, one commit for the group),
   * which is what makes single-entity PATCHes scale. Each caller still gets its own result or error.
   */
  async modify(
    tenant: string,
    id: string,
    change: ModifyFn,
    kind: ChangeEvent['kind'] = 'update',
  ): Promise<StoredEntity> {
    checkEntityId(id);
    await this.assertTenant(tenant);
    return new Promise<StoredEntity>((resolve, reject) => {
      this.pending.push({ tenant, id, change, kind, resolve, reject });
      this.scheduleFlush();
    });
  }

  private pending: PendingModification[] = [];
  private flushScheduled = false;
  private flushesInFlight = 0;
  /**
   * Group transactions allowed at once. One at a time made throughput the group size divided by
   * one transaction's round trips plus its commit (fsync): the broker idled while PostgreSQL
   * flushed WAL. With several, the next groups do their work while earlier ones commit. Groups
   * touching the same entity serialise on its row lock (taken in id order, so they cannot deadlock).
   */
  private static readonly MAX_FLUSHES = 8;
  /** settles when the previous group has published its events: groups publish in start order */
  private publishTail: Promise<void> = Promise.resolve();

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushesInFlight >= Broker.MAX_FLUSHES || !this.pending.length) return;
    this.flushScheduled = true;
    // after pending I/O callbacks, so that requests already received join the same transaction
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.pending.length || this.flushesInFlight >= Broker.MAX_FLUSHES) return;
      this.flushesInFlight++;
      const batch = this.pending.splice(0, 1000);
      const prev = this.publishTail;
      let published!: () => void;
      this.publishTail = new Promise<void>((r) => (published = r));
      void this.flushModifications(batch, prev, published).finally(() => {
        this.flushesInFlight--;
        this.scheduleFlush();
      });
      this.scheduleFlush();
    });
  }

  private async flushModifications(batch: PendingModification[], prev: Promise<void>, published: () => void): Promise<void> {
    const now = nowIso();
    const evs: ChangeEvent[] = [];
    const outcome = new Map<PendingModification, Outcome>();
    let failed: unknown;
    try {
      const rest = this.cache.enabled ? await this.applyUnlocked(batch, now, evs, outcome) : batch;
      if (rest.length) await this.applyLocked(rest, now, evs, outcome);
    } catch (err) {
      failed = err;
    }
    // the bus hands events to its handlers synchronously: publishing in group order keeps
    // per-entity event order even though the next group may already have committed
    await prev;
    const delivered = this.emit(evs);
    published();
    try {
      await delivered;
    } catch (err) {
      failed ??= err;
    }
    for (const m of batch) {
      const o = outcome.get(m);
      if (!o) m.reject(failed);
      else if (o.err !== undefined) m.reject(o.err);
      else m.resolve(o.ok!);
    }
  }

  /**
   * The fast path of a group: entities whose cached version is known are changed from the cache
   * and written by one statement that only applies where the row is still at that version (no
   * transaction, no lock query: one round trip and one commit). Returns the modifications that
   * must go through the locked path: entity not cached, row changed meanwhile, other GeoProperties
   * changed (a second table to write), or a conflict between concurrent statements.
   */
  private async applyUnlocked(batch: PendingModification[], now: string, evs: ChangeEvent[], outcome: Map<PendingModification, Outcome>): Promise<PendingModification[]> {
    const rest: PendingModification[] = [];
    const planned = new Map<string, { before: StoredEntity; c: ModChain; mods: PendingModification[] }[]>();
    for (const mods of byEntity(batch).values()) {
      const { tenant, id } = mods[0];
      const cached = this.cache.get(tenant, id);
      if (!this.fastBase(cached)) { rest.push(...mods); continue; }
      const c = applyChain(cached, mods, now);
      if (c.cur === cached) {
        // nothing to write (only errors or no-ops): answered from the cached version
        for (const [m, o] of c.outs) outcome.set(m, o);
        continue;
      }
      if (!this.repo.sameOtherGeo(cached, c.cur)) { rest.push(...mods); continue; }
      const list = planned.get(tenant) ?? [];
      list.push({ before: cached, c, mods });
      planned.set(tenant, list);
    }
    for (const [tenant, list] of planned) {
      const written = (await this.tryWriteUnlocked(tenant, list.map((p) => ({ before: p.before, after: p.c.cur })))).updated;
      for (const p of list) {
        if (!written.has(p.c.cur.id)) { rest.push(...p.mods); continue; }
        evs.push(...p.c.evs);
        for (const [m, o] of p.c.outs) outcome.set(m, o);
      }
    }
    return rest;
  }

  /** A cached entity a fast-path write may start from: its row version known, not expired. */
  private fastBase(cached: StoredEntity | undefined): cached is StoredEntity {
    return cached !== undefined && !isExpired(cached) && this.repo.hasVersion(cached);
  }

  /** writeUnlocked, where a failure means "nothing written": the locked path then decides. */
  private async tryWriteUnlocked(tenant: string, updates: { before: StoredEntity; after: StoredEntity }[], inserts: StoredEntity[] = []) {
    try {
      return await this.repo.writeUnlocked(this.db, tenant, updates, inserts);
    } catch {
      // e.g. two concurrent statements locking rows in different orders
      return { updated: new Set<string>(), inserted: new Set<string>() };
    }
  }

  /** The general path of a group: one transaction that locks the rows, applies the changes and writes them. */
  private async applyLocked(batch: PendingModification[], now: string, evs: ChangeEvent[], outcome: Map<PendingModification, Outcome>): Promise<void> {
    const groups = [...byEntity(batch).values()];
    let chains: ModChain[] = [];
    let missing: PendingModification[] = [];
    await this.db.tx(async (db) => {
      // (run again from scratch when the transaction is retried)
      chains = [];
      missing = [];
      for (const t of [...new Set(batch.map((m) => m.tenant))].sort()) {
        const mine = groups.filter((mods) => mods[0].tenant === t);
        const cur = await this.repo.lockMany(db, t, mine.map((mods) => mods[0].id), (id) => this.cache.get(t, id));
        const toSave: StoredEntity[] = [];
        for (const mods of mine) {
          const start = cur.get(mods[0].id);
          if (!start || isExpired(start)) { missing.push(...mods); continue; }
          const c = applyChain(start, mods, now);
          chains.push(c);
          if (c.cur !== start) toSave.push(c.cur);
        }
        await this.repo.saveMany(db, t, toSave, cur);
      }
    });
    for (const c of chains) {
      evs.push(...c.evs);
      for (const [m, o] of c.outs) outcome.set(m, o);
    }
    for (const m of missing) outcome.set(m, { err: new ProblemError('ResourceNotFound', `Entity "${m.id}" was not found.`) });
  }

  async replaceEntity(tenant: string, id: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context, { tenant });
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
    const ctx = await this.contexts.resolve(context, { tenant });
    if (fragment.id !== undefined && fragment.id !== id) throw new ProblemError('BadRequestData', `The id in the body ("${String(fragment.id)}") differs from the id in the URL ("${id}").`);
    const frag = normalizeEntity({ ...fragment, id }, ctx, { now: nowIso(), allowNull: true, mergePatch: true, typeOptional: true });
    await this.modify(tenant, id, (cur, now) => mergeInto(cur, frag, now));
  }

  /** POST /entities/{id}/attrs (append; options=noOverwrite keeps existing attributes) */
  async appendAttrs(tenant: string, id: string, body: Record<string, unknown>, context: ContextRef, noOverwrite: boolean): Promise<UpdateResult> {
    const ctx = await this.contexts.resolve(context, { tenant });
    const frag = normalizeEntity({ ...body, id }, ctx, { now: nowIso(), typeOptional: true });
    const res: UpdateResult = { updated: [], notUpdated: [] };
    await this.modify(tenant, id, (cur, now) => {
      // may run more than once (fast path missed, transaction retried): start from scratch
      res.updated.length = 0;
      res.notUpdated.length = 0;
      const next = clone(cur);
      const changed: string[] = [];
      for (const t of frag.type) if (!next.type.includes(t)) next.type.push(t);
      if (next.type.length !== cur.type.length) changed.push('@type');
      if (frag.scope) {
        // overwrite replaces the scopes; noOverwrite adds to them (clause 4.18)
        next.scope = noOverwrite && cur.scope ? [...new Set([...cur.scope, ...frag.scope])] : frag.scope;
        changed.push('scope');
      }
      if (frag.expiresAt === NGSI_NULL) delete next.expiresAt;
      else if (frag.expiresAt) next.expiresAt = frag.expiresAt;
      for (const [name, insts] of Object.entries(frag.attrs)) {
        const out = [...(next.attrs[name] ?? [])];
        let any = false;
        for (const inst of insts) {
          const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
          if (idx >= 0 && noOverwrite) continue;
          stamp(inst, idx >= 0 ? out[idx] : undefined, now);
          if (idx >= 0) out[idx] = inst;
          else out.push(inst);
          any = true;
        }
        if (any) { next.attrs[name] = out; changed.push(name); res.updated.push(name); }
        else res.notUpdated.push({ attributeName: name, reason: 'Attribute exists and noOverwrite was requested.' });
      }
      return { next, changed };
    });
    return res;
  }

  /**
   * PATCH /entities/{id}/attrs: attributes (and datasetId instances) are replaced when present and
   * appended when not; NGSI-LD Null deletes; scope is replaced only if the entity has one.
   */
  async updateAttrs(tenant: string, id: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    await this.updateAttrsDetailed(tenant, id, body, context);
  }

  async updateAttrsDetailed(tenant: string, id: string, body: Record<string, unknown>, context?: ContextRef): Promise<UpdateResult> {
    const ctx = await this.contexts.resolve(context, { tenant });
    const frag = normalizeEntity({ ...body, id }, ctx, { now: nowIso(), allowNull: true, typeOptional: true });
    if (!Object.keys(frag.attrs).length && !frag.scope && !frag.type.length && !frag.expiresAt)
      throw new ProblemError('BadRequestData', 'The update fragment holds no attribute.');
    const res: UpdateResult = { updated: [], notUpdated: [] };
    await this.modify(tenant, id, (cur, now) => {
      res.updated.length = 0;
      res.notUpdated.length = 0;
      const next = clone(cur);
      const changed: string[] = [];
      const deleted: string[] = [];
      for (const t of frag.type) if (!next.type.includes(t)) next.type.push(t);
      if (next.type.length !== cur.type.length) changed.push('@type');
      if (frag.scope) {
        if (cur.scope) { next.scope = frag.scope; changed.push('scope'); res.updated.push('scope'); }
        else res.notUpdated.push({ attributeName: 'scope', reason: 'The entity has no scope to update.' });
      }
      if (frag.expiresAt === NGSI_NULL) delete next.expiresAt;
      else if (frag.expiresAt) next.expiresAt = frag.expiresAt;
      for (const [name, insts] of Object.entries(frag.attrs)) {
        const out = [...(next.attrs[name] ?? [])];
        for (const inst of insts) {
          const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
          if (isNullInstance(inst)) {
            if (idx >= 0) out.splice(idx, 1);
            continue;
          }
          stamp(inst, idx >= 0 ? out[idx] : undefined, now);
          if (idx >= 0) out[idx] = inst;
          else out.push(inst);
        }
        if (out.length) { next.attrs[name] = out; changed.push(name); }
        else if (next.attrs[name]) { delete next.attrs[name]; deleted.push(name); }
        res.updated.push(name);
      }
      return { next, changed, deleted };
    });
    return res;
  }

  /** PATCH /entities/{id}/attrs/{attr}: merge the given members into the existing instance; NGSI-LD Null deletes it. */
  async partialAttrUpdate(tenant: string, id: string, attrName: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context, { tenant });
    if (attrName === 'scope') throw new ProblemError('BadRequestData', 'scope is not an attribute: update it with PATCH /entities/{id}/attrs.');
    const iri = expandAttrName(attrName, ctx);
    if (!isObject(body)) throw new ProblemError('BadRequestData', 'The attribute fragment must be a JSON object.');
    body = withoutContext(body);
    if (body.datasetId === NGSI_NULL) throw new ProblemError('BadRequestData', 'datasetId cannot be deleted with NGSI-LD Null: delete the instance with DELETE .../attrs/{attr}?datasetId=...');
    const ds = body.datasetId === '@none' ? undefined : (body.datasetId as string | undefined);
    await this.modify(tenant, id, (cur, now) => {
      const insts = cur.attrs[iri];
      const idx = insts ? insts.findIndex((x) => (x.datasetId ?? '') === (ds ?? '')) : -1;
      if (!insts || idx < 0) throw new ProblemError('ResourceNotFound', `Attribute "${attrName}"${ds ? ` with datasetId "${ds}"` : ''} was not found on entity "${id}".`);
      const old = insts[idx];
      if (body.type !== undefined && body.type !== old.type)
        throw new ProblemError('BadRequestData', `Attribute "${attrName}" is a ${old.type}; a partial update cannot change it to ${String(body.type)}.`);
      const next = clone(cur);
      const probe = normalizeInstance(attrName, { ...renderPlain(old), ...body, type: old.type }, ctx, { now, allowNull: true }, true);
      if (isNullInstance(probe)) {
        const keep = insts.filter((_, i) => i !== idx);
        if (keep.length) next.attrs[iri] = keep;
        else delete next.attrs[iri];
        return { next, changed: keep.length ? [iri] : [], deleted: keep.length ? [] : [iri] };
      }
      mergeSubAttrs(probe, old, body, ctx);
      stamp(probe, old, now);
      next.attrs[iri] = insts.map((x, i) => (i === idx ? probe : x));
      return { next, changed: [iri] };
    });
  }

  /** PUT /entities/{id}/attrs/{attr}: replace the attribute (instance with the body's datasetId). */
  async replaceAttr(tenant: string, id: string, attrName: string, body: Record<string, unknown>, context?: ContextRef): Promise<void> {
    const ctx = await this.contexts.resolve(context, { tenant });
    if (attrName === 'scope') throw new ProblemError('BadRequestData', 'scope is not an attribute: replace it with PATCH /entities/{id}/attrs.');
    const iri = expandAttrName(attrName, ctx);
    const inst = normalizeInstance(attrName, withoutContext(body), ctx, { now: nowIso() }, true);
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
    const ctx = await this.contexts.resolve(context, { tenant });
    if (attrName === 'scope') {
      await this.modify(tenant, id, (cur) => {
        if (!cur.scope) throw new ProblemError('ResourceNotFound', `Entity "${id}" has no scope.`);
        const next = clone(cur);
        delete next.scope;
        return { next, changed: ['scope'] };
      });
      return;
    }
    const iri = expandAttrName(attrName, ctx);
    const ds = opts.datasetId === '@none' ? undefined : opts.datasetId;
    await this.modify(tenant, id, (cur) => {
      const insts = cur.attrs[iri];
      if (!insts) throw new ProblemError('ResourceNotFound', `Attribute "${attrName}" was not found on entity "${id}".`);
      const keep = opts.deleteAll ? [] : insts.filter((x) => (x.datasetId ?? '') !== (ds ?? ''));
      if (keep.length === insts.length)
        throw new ProblemError('ResourceNotFound', `Attribute "${attrName}" has no ${ds ? `instance with datasetId "${ds}"` : 'default instance'} on entity "${id}".`);
      const next = clone(cur);
      if (keep.length) next.attrs[iri] = keep;
      else delete next.attrs[iri];
      return { next, changed: keep.length ? [iri] : [], deleted: keep.length ? [] : [iri] };
    });
  }

  /** Optional `type` selector of entity-level operations (clause 5.6.x): the entity must have that type. */
  async checkTypeSelector(tenant: string, id: string, type: string | undefined, context: ContextRef): Promise<void> {
    if (type === undefined) return;
    const ctx = await this.contexts.resolve(context, { tenant });
    const e = await this.getStored(tenant, id);
    const want = type.split(',').map((t) => ctx.expandTerm(t.trim()));
    if (!want.some((t) => e.type.includes(t))) throw new ProblemError('ResourceNotFound', `Entity "${id}" is not of type ${type}.`);
  }

  async deleteEntity(tenant: string, id: string): Promise<void> {
    checkEntityId(id);
    await this.assertTenant(tenant);
    const gone = await this.db.tx((db) => this.repo.deleteMany(db, tenant, [id]));
    if (!gone.length) throw new ProblemError('ResourceNotFound', `Entity "${id}" was not found.`);
    await this.emitDeletes(tenant, gone);
  }

  private emitDeletes(tenant: string, gone: StoredEntity[]): Promise<void> {
    const at = nowIso();
    return this.emit(gone.map((e) => ({ tenant, entityId: e.id, types: e.type, kind: 'delete' as const, before: e, changedAttrs: [], deletedAttrs: Object.keys(e.attrs), at })));
  }

  // ---------- batch operations ----------

  /**
   * Normalises each item independently: invalid ones become errors, valid ones go on. A null or
   * non-object item makes the whole request invalid (clause 5.6.7.4). `perItemContext`: the body was
   * application/ld+json, so each item must carry its own @context; otherwise none may.
   */
  private async normalizeBatch(tenant: string, body: unknown, ctxRef: ContextRef, perItemContext: boolean, opts: { allowNull?: boolean; mergePatch?: boolean; typeOptional?: boolean } = {}) {
    if (!Array.isArray(body)) throw new ProblemError('BadRequestData', 'A batch operation body must be a JSON array of entities.');
    if (body.length === 0) throw new ProblemError('BadRequestData', 'The batch is empty.');
    body.forEach((item, i) => {
      if (!isObject(item)) throw new ProblemError('BadRequestData', `Item ${i} of the batch is ${item === null ? 'null' : 'not a JSON object'}: every item must be an entity.`);
    });
    const ok: StoredEntity[] = [];
    const errors: BatchResult['errors'] = [];
    const nopts = { now: nowIso(), ...opts };
    // one context for the whole batch unless each item brings its own (an await per item was a
    // promise and a microtask per entity on the hot path of batch writes)
    let shared: TermResolver | undefined;
    for (const item of body as Record<string, unknown>[]) {
      const rawId = String(item.id ?? item['@id'] ?? '');
      try {
        const has = item['@context'] !== undefined;
        if (perItemContext && !has) throw new ProblemError('BadRequestData', 'An entity sent as application/ld+json needs an "@context".');
        if (!perItemContext && has) throw new ProblemError('BadRequestData', 'An entity sent as application/json must not contain "@context" (use a Link header or application/ld+json).');
        const ctx = perItemContext ? await this.contexts.resolve(item['@context'] as ContextRef, { tenant }) : (shared ??= await this.contexts.resolve(ctxRef, { tenant }));
        ok.push(normalizeEntity(item, ctx, nopts));
      } catch (err) {
        errors.push({ entityId: rawId, error: toProblem(err) });
      }
    }
    return { ok, errors };
  }

  async batchCreate(tenant: string, body: unknown, ctxRef: ContextRef, perItemContext = false): Promise<BatchResult> {
    const { ok, errors } = await this.normalizeBatch(tenant, body, ctxRef, perItemContext);
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
    await this.emit(evs);
    return { success, errors };
  }

  async upsertEntities(tenant: string, entities: Record<string, unknown>[], opts: { context?: ContextRef; mode?: 'replace' | 'update' } = {}): Promise<BatchResult> {
    return this.batchUpsert(tenant, entities, opts.context, opts.mode ?? 'replace', false);
  }

  /** entityOperations/upsert: create missing entities; existing ones are replaced or updated (options=update). */
  async batchUpsert(tenant: string, body: unknown, ctxRef: ContextRef, mode: 'replace' | 'update', perItemContext = false): Promise<BatchResult & { created: string[] }> {
    const { ok, errors } = await this.normalizeBatch(tenant, body, ctxRef, perItemContext);
    const merged = mergeDuplicates(ok, mode);
    const created: string[] = [];
    const evs: ChangeEvent[] = [];
    const createEvent = (e: StoredEntity): ChangeEvent => ({ tenant, entityId: e.id, types: e.type, kind: 'create', after: e, changedAttrs: Object.keys(e.attrs), at: e.createdAt });
    const updateEvent = (cur: StoredEntity, e: StoredEntity, next: StoredEntity): ChangeEvent => ({ tenant, entityId: e.id, types: next.type, kind: mode === 'replace' ? 'replace' : 'update', before: cur, after: next, changedAttrs: Object.keys(e.attrs), deletedAttrs: mode === 'replace' ? missingFrom(cur.attrs, e.attrs) : undefined, at: e.modifiedAt });
    let rest = merged;
    if (this.cache.enabled) {
      // fast path: cached entities are replaced / updated if their row is unchanged, the others
      // inserted if absent, in one statement; whatever that could not write takes the locked path
      rest = [];
      const updates: { before: StoredEntity; after: StoredEntity; src: StoredEntity }[] = [];
      const inserts: StoredEntity[] = [];
      for (const e of merged) {
        const cached = this.cache.get(tenant, e.id);
        if (!cached) {
          if (this.repo.hasOtherGeo(e)) rest.push(e);
          else inserts.push(e);
          continue;
        }
        if (!this.fastBase(cached)) { rest.push(e); continue; }
        const next = upsertInto(cached, e, mode);
        if (!this.repo.sameOtherGeo(cached, next)) { rest.push(e); continue; }
        updates.push({ before: cached, after: next, src: e });
      }
      const written = await this.tryWriteUnlocked(tenant, updates, inserts);
      for (const u of updates) {
        if (written.updated.has(u.src.id)) evs.push(updateEvent(u.before, u.src, u.after));
        else rest.push(u.src);
      }
      for (const e of inserts) {
        if (written.inserted.has(e.id)) { created.push(e.id); evs.push(createEvent(e)); }
        else rest.push(e);
      }
    }
    if (rest.length) {
      const lockedEvs: ChangeEvent[] = [];
      const lockedCreated: string[] = [];
      try {
        await this.db.tx(async (db) => {
          lockedEvs.length = 0;
          lockedCreated.length = 0;
          const existing = await this.repo.lockMany(db, tenant, rest.map((e) => e.id), (id) => this.cache.get(tenant, id));
          const toSave: StoredEntity[] = [];
          for (const e of rest) {
            const cur = existing.get(e.id);
            if (!cur) {
              toSave.push(e);
              lockedCreated.push(e.id);
              lockedEvs.push(createEvent(e));
              continue;
            }
            const next = upsertInto(cur, e, mode);
            toSave.push(next);
            lockedEvs.push(updateEvent(cur, e, next));
          }
          await this.repo.saveMany(db, tenant, toSave, existing);
        });
      } catch (err) {
        // what the fast path wrote is committed: it is still announced
        await this.emit(evs);
        throw err;
      }
      evs.push(...lockedEvs);
      created.push(...lockedCreated);
    }
    await this.emit(evs);
    return { success: merged.map((e) => e.id), errors, created };
  }

  /** entityOperations/update: update attributes of existing entities (options=noOverwrite keeps existing ones). */
  async batchUpdate(tenant: string, body: unknown, ctxRef: ContextRef, noOverwrite: boolean, perItemContext = false): Promise<BatchResult> {
    const { ok, errors } = await this.normalizeBatch(tenant, body, ctxRef, perItemContext, { typeOptional: true });
    return this.batchApply(tenant, ok, errors, (cur, e, now) => {
      const next = clone(cur);
      if (!Object.keys(e.attrs).length && !e.type.length && !e.scope)
        throw new ProblemError('BadRequestData', `The update of "${e.id}" holds no attribute.`);
      const kept: string[] = [];
      for (const t of e.type) if (!next.type.includes(t)) next.type.push(t);
      if (e.scope) next.scope = e.scope;
      for (const [name, insts] of Object.entries(e.attrs)) {
        const out = [...(next.attrs[name] ?? [])];
        for (const inst of insts) {
          const idx = out.findIndex((x) => (x.datasetId ?? '') === (inst.datasetId ?? ''));
          if (idx >= 0 && noOverwrite) { kept.push(name); continue; }
          stamp(inst, idx >= 0 ? out[idx] : undefined, now);
          if (idx >= 0) out[idx] = inst;
          else out.push(inst);
        }
        next.attrs[name] = out;
      }
      return { next, changed: Object.keys(e.attrs), partial: kept.length ? `Not overwritten (noOverwrite): ${kept.join(', ')}.` : undefined };
    });
  }

  async batchMerge(tenant: string, body: unknown, ctxRef: ContextRef, perItemContext = false): Promise<BatchResult> {
    const { ok, errors } = await this.normalizeBatch(tenant, body, ctxRef, perItemContext, { allowNull: true, mergePatch: true, typeOptional: true });
    return this.batchApply(tenant, ok, errors, (cur, e, now) => mergeInto(cur, e, now));
  }

  private async batchApply(
    tenant: string,
    ok: StoredEntity[],
    errors: BatchResult['errors'],
    apply: (cur: StoredEntity, frag: StoredEntity, now: string) => { next: StoredEntity; changed: string[]; deleted?: string[]; partial?: string },
  ): Promise<BatchResult> {
    const now = nowIso();
    if (!(await this.repo.tenantExists(tenant))) {
      for (const e of ok) errors.push({ entityId: e.id, error: notFoundProblem(e.id) });
      return { success: [], errors };
    }
    // fragments per entity, in request order; results are reported in request order too
    const byId = new Map<string, number[]>();
    ok.forEach((f, i) => {
      const l = byId.get(f.id);
      if (l) l.push(i);
      else byId.set(f.id, [i]);
    });
    interface Chain { cur: StoredEntity; evs: ChangeEvent[]; results: [number, Problem | null][] }
    const chain = (start: StoredEntity, idx: number[]): Chain => {
      const c: Chain = { cur: start, evs: [], results: [] };
      for (const i of idx) {
        const frag = ok[i];
        try {
          const r = apply(c.cur, frag, now);
          r.next.modifiedAt = now;
          c.results.push([i, r.partial ? (new ProblemError('BadRequestData', r.partial).toProblem() as Problem) : null]);
          c.evs.push({ tenant, entityId: frag.id, types: r.next.type, kind: 'update', before: c.cur, after: r.next, changedAttrs: r.changed, deletedAttrs: r.deleted, at: now });
          c.cur = r.next;
        } catch (err) {
          c.results.push([i, toProblem(err)]);
        }
      }
      return c;
    };
    const done: Chain[] = [];
    let rest = [...byId.keys()];
    if (this.cache.enabled) {
      // fast path: entities changed from their cached version, written where the row is unchanged
      rest = [];
      const planned: { id: string; before: StoredEntity; c: Chain }[] = [];
      for (const [id, idx] of byId) {
        const cached = this.cache.get(tenant, id);
        if (!this.fastBase(cached)) { rest.push(id); continue; }
        const c = chain(cached, idx);
        if (c.cur === cached) done.push(c);
        else if (!this.repo.sameOtherGeo(cached, c.cur)) rest.push(id);
        else planned.push({ id, before: cached, c });
      }
      const written = (await this.tryWriteUnlocked(tenant, planned.map((p) => ({ before: p.before, after: p.c.cur })))).updated;
      for (const p of planned) {
        if (written.has(p.id)) done.push(p.c);
        else rest.push(p.id);
      }
    }
    const missing: number[] = [];
    if (rest.length) {
      let chains: Chain[] = [];
      try {
        await this.db.tx(async (db) => {
          chains = [];
          missing.length = 0;
          const existing = await this.repo.lockMany(db, tenant, rest, (id) => this.cache.get(tenant, id));
          const toSave: StoredEntity[] = [];
          for (const id of rest) {
            const cur = existing.get(id);
            if (!cur) { missing.push(...byId.get(id)!); continue; }
            const c = chain(cur, byId.get(id)!);
            chains.push(c);
            if (c.cur !== cur) toSave.push(c.cur);
          }
          await this.repo.saveMany(db, tenant, toSave, existing);
        });
      } catch (err) {
        // what the fast path wrote is committed: it is still announced
        await this.emit(done.flatMap((c) => c.evs));
        throw err;
      }
      done.push(...chains);
    }
    const results: [number, Problem | null][] = done.flatMap((c) => c.results);
    for (const i of missing) results.push([i, notFoundProblem(ok[i].id)]);
    results.sort((a, b) => a[0] - b[0]);
    const success: string[] = [];
    for (const [i, problem] of results) {
      if (problem) errors.push({ entityId: ok[i].id, error: problem });
      else success.push(ok[i].id);
    }
    await this.emit(done.flatMap((c) => c.evs));
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
    const success: string[] = [];
    // the same id twice: the first delete succeeds, the second finds nothing
    for (const id of ids) {
      if (goneIds.has(id)) { success.push(id); goneIds.delete(id); }
      else errors.push({ entityId: id, error: notFoundProblem(id) });
    }
    await this.emitDeletes(tenant, gone);
    return { success, errors };
  }

  // ---------- queries ----------

  async queryEntities(tenant: string, params: QueryParams): Promise<QueryResult> {
    const r = await this.query(tenant, params);
    return { entities: r.entities, count: r.count };
  }

  async compile(params: QueryParams, tenant?: string): Promise<{ plan: CompiledQuery; ctx: TermResolver }> {
    const ctx = await this.contexts.resolve(params.context, { tenant });
    return { plan: buildQuery(params, ctx), ctx };
  }

  /** Query with rendering; also returns the stored entities for callers that need them (e.g. geo+json). */
  async query(tenant: string, params: QueryParams): Promise<QueryResult & { stored: StoredEntity[]; ctx: TermResolver }> {
    const limit = params.limit ?? this.limits.defaultLimit;
    if (limit > this.limits.maxLimit)
      throw new ProblemError('TooManyResults', `limit=${limit} exceeds the maximum of ${this.limits.maxLimit} entities per page: page with limit and offset.`);
    const offset = params.offset ?? 0;
    const { plan, ctx } = await this.compile(params, tenant);
    if (!(await this.repo.tenantExists(tenant))) throw new ProblemError('NonexistentTenant', `Tenant "${tenant}" does not exist.`);
    let stored: StoredEntity[];
    let count: number | undefined;
    if (plan.post || plan.linkedMatch || plan.sort) {
      // exact predicates that SQL cannot express (geometry, linked-entity q): filter all candidates, then page
      let all = await this.repo.select(tenant, plan.where, plan.params, undefined, 'e.id', plan.planPerCall);
      if (plan.post) all = all.filter(plan.post);
      if (plan.linkedMatch) {
        const known = await loadLinked(all, { keepId: true, keepType: true }, plan.qLinkedDepth, (ids) => this.loadMany(tenant, ids));
        all = all.filter((e) => plan.linkedMatch!(e, (id) => known.get(id)));
      }
      if (plan.sort) all.sort(plan.sort);
      count = all.length;
      stored = limit === 0 ? [] : all.slice(offset, offset + limit);
    } else {
      if (limit === 0) stored = [];
      else if (this.cache.enabled) {
        // ids from SQL, bodies from the cache: no jsonb transfer and parse for entities already in memory
        const ids = await this.repo.selectIds(tenant, plan.where, plan.params, { limit, offset }, plan.planPerCall);
        const found = await this.loadMany(tenant, ids);
        stored = ids.map((id) => found.get(id)).filter((e): e is StoredEntity => e !== undefined && !isExpired(e));
      } else stored = await this.repo.select(tenant, plan.where, plan.params, { limit, offset }, 'e.id', plan.planPerCall);
      if (params.count) count = await this.repo.count(tenant, plan.where, plan.params, plan.planPerCall);
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
    if (plan.pick || plan.omit || !plan.keepId || !plan.keepType) {
      // entities with no member left after pick / omit are not returned (clause 4.21)
      const rendered = stored.map((e) => renderEntity(e, ctx, ro));
      stored = stored.filter((_e, k) => Object.keys(rendered[k]).length > 0);
    }
    const entities = params.join && params.join !== '@none'
      ? await renderJoined(stored, ctx, ro, plan, params.join, params.joinLevel ?? 1, (ids) => this.loadMany(tenant, ids))
      : stored.map((e) => renderEntity(e, ctx, ro));
    return { entities, count: params.count ? count : undefined, stored, ctx };
  }

  /** Entities by id (missing ones are absent from the map), through the cache. */
  async loadMany(tenant: string, ids: string[]): Promise<Map<string, StoredEntity>> {
    const out = new Map<string, StoredEntity>();
    const rest: string[] = [];
    for (const id of ids) {
      const hit = this.cache.get(tenant, id);
      if (hit) out.set(id, hit);
      else rest.push(id);
    }
    if (rest.length) {
      for (const [id, e] of await this.repo.getMany(tenant, rest)) {
        out.set(id, e);
        this.cache.setIfAbsent(tenant, e);
      }
    }
    return out;
  }

  /** DELETE /entities?type=... (purge): deletes every match, or only drops / keeps attributes; returns how many. */
  async purge(tenant: string, params: QueryParams, opts: { keep?: string[]; drop?: string[] } = {}): Promise<number> {
    const { plan, ctx } = await this.compile(params, tenant);
    await this.assertTenant(tenant);
    let victims = await this.repo.select(tenant, plan.where, plan.params, undefined, 'e.id', plan.planPerCall);
    if (plan.post) victims = victims.filter(plan.post);
    if (!victims.length) return 0;
    if (opts.keep || opts.drop) {
      const names = new Set((opts.keep ?? opts.drop)!.map((a) => ctx.expandTerm(a)));
      const keep = !!opts.keep;
      const now = nowIso();
      const evs: ChangeEvent[] = [];
      await this.db.tx(async (db) => {
        const out: StoredEntity[] = [];
        for (const cur of victims) {
          const next = clone(cur);
          const deleted: string[] = [];
          for (const a of Object.keys(next.attrs)) if (names.has(a) !== keep) { delete next.attrs[a]; deleted.push(a); }
          if (!deleted.length) continue;
          next.modifiedAt = now;
          out.push(next);
          evs.push({ tenant, entityId: cur.id, types: cur.type, kind: 'update', before: cur, after: next, changedAttrs: [], deletedAttrs: deleted, at: now });
        }
        await this.repo.saveMany(db, tenant, out);
      });
      await this.emit(evs);
      return evs.length;
    }
    const gone = await this.db.tx((db) => this.repo.deleteMany(db, tenant, victims.map((e) => e.id)));
    await this.emitDeletes(tenant, gone);
    return gone.length;
  }

  /** Deletes transient entities whose expiry passed (reads already hide them); returns how many. */
  async reapExpired(): Promise<number> {
    const rows = await this.repo.expired();
    const byTenant = new Map<string, string[]>();
    for (const r of rows) byTenant.set(r.tenant, [...(byTenant.get(r.tenant) ?? []), r.id]);
    let n = 0;
    for (const [tenant, ids] of byTenant) {
      const gone = await this.db.tx((db) => this.repo.deleteMany(db, tenant, ids));
      await this.emitDeletes(tenant, gone);
      n += gone.length;
    }
    return n;
  }

  render(e: StoredEntity, ctx: TermResolver, o: RenderOptions) {
    return renderEntity(e, ctx, o);
  }

  private emit(evs: ChangeEvent[]): Promise<void> {
    if (!evs.length) return Promise.resolve();
    for (const ev of evs) {
      if (ev.after) this.cache.set(ev.tenant, ev.after);
      else this.cache.delete(ev.tenant, ev.entityId);
    }
    return this.bus.publish(evs);
  }
}

// ---------- helpers ----------

function withoutContext(body: Record<string, unknown>): Record<string, unknown> {
  if (!('@context' in body)) return body;
  const { '@context': _c, ...rest } = body;
  return rest;
}

function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === NGSI_NULL) delete out[k];
    else if (isObject(v) && isObject(out[k])) out[k] = mergePatch(out[k] as Record<string, unknown>, v);
    else if (isObject(v)) out[k] = mergePatch({}, v);
    else out[k] = v;
  }
  return out;
}

/** Names of `a` that `b` lacks. */
function missingFrom(a: object, b: object): string[] {
  const out: string[] = [];
  for (const k in a) if (!(k in b)) out.push(k);
  return out;
}

/** The entity an upsert writes over `cur`: `e` whole (replace, keeping createdAt) or attribute by attribute (update). */
function upsertInto(cur: StoredEntity, e: StoredEntity, mode: 'replace' | 'update'): StoredEntity {
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
  return next;
}

function isExpired(e: StoredEntity): boolean {
  return e.expiresAt !== undefined && Date.parse(e.expiresAt) <= Date.now();
}

function clone(e: StoredEntity): StoredEntity {
  return { ...e, type: [...e.type], scope: e.scope ? [...e.scope] : undefined, attrs: { ...e.attrs } };
}

/** Keep createdAt of the instance being replaced; set modifiedAt. */
function stamp(inst: AttrInstance, old: AttrInstance | undefined, now: string) {
  if (inst.expiresAt === NGSI_NULL) delete inst.expiresAt; // NGSI-LD Null makes the instance durable
  inst.createdAt = old?.createdAt ?? now;
  inst.modifiedAt = now;
}

function isNullInstance(i: AttrInstance): boolean {
  const lm = i.languageMap as Record<string, unknown> | undefined;
  if (lm && typeof lm === 'object' && lm['@none'] === NGSI_NULL && Object.keys(lm).length === 1) return true;
  if (i.json !== undefined && typeof i.json === 'object' && i.json !== null && (i.json as Record<string, unknown>)['@none'] === NGSI_NULL) return true;
  return i.json === NGSI_NULL || i.value === NGSI_NULL || i.object === NGSI_NULL || i.vocab === NGSI_NULL || (i.languageMap as unknown) === NGSI_NULL || (i.valueList as unknown) === NGSI_NULL || (i.objectList as unknown) === NGSI_NULL;
}

/** Merge-patch semantics (clause 5.6.17): NGSI-LD Null deletes, instances are merged member by member. */
function mergeInto(cur: StoredEntity, frag: StoredEntity, now: string) {
  const next = clone(cur);
  const changed: string[] = [];
  const deleted: string[] = [];
  for (const t of frag.type) if (!next.type.includes(t)) next.type.push(t);
  if (frag.scope) next.scope = frag.scope;
  if (frag.expiresAt === NGSI_NULL) delete next.expiresAt;
      else if (frag.expiresAt) next.expiresAt = frag.expiresAt;
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
        // JSON merge-patch (RFC 7396) inside structured values: null removes a key
        if (isObject(old.value) && isObject(inst.value)) m.value = mergePatch(old.value, inst.value);
        for (const k of Object.keys(inst)) {
          const v = inst[k] as AttrInstance | undefined;
          if (!INSTANCE_CORE_KEYS.has(k) && v && typeof v === 'object' && isNullInstance(v)) delete m[k];
        }
        if (m.expiresAt === NGSI_NULL) delete m.expiresAt;
        stamp(m, old, now);
        out[idx] = m;
      } else {
        if (isObject(inst.value)) inst.value = mergePatch({}, inst.value);
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
  for (const k of ['type', 'value', 'object', 'languageMap', 'json', 'valueList', 'observedAt', 'unitCode', 'datasetId', 'expiresAt', 'objectType']) if (i[k] !== undefined) o[k] = i[k];
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

/** Later occurrences of the same id in one upsert batch win: wholly (replace) or attribute by attribute (update). */
function mergeDuplicates(ok: StoredEntity[], mode: 'replace' | 'update'): StoredEntity[] {
  const m = new Map<string, StoredEntity>();
  for (const e of ok) {
    const prev = m.get(e.id);
    if (!prev || mode === 'replace') { m.set(e.id, e); continue; }
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

