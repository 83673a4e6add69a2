import { notificationToPayload, subscriptionStatus } from './validate.ts';
import type { DeliveryStatus, Subscription } from './types.ts';

/**
 * A stored subscription back to its NGSI-LD JSON form (5.2.12), terms compacted with `compact`,
 * with the computed members status, notification status and counters.
 */
export function subscriptionToPayload(
  sub: Subscription,
  delivery: DeliveryStatus | undefined,
  compact: (iri: string) => string,
  now: number,
  opts: { sysAttrs?: boolean } = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = { id: sub.id, type: 'Subscription' };
  if (sub.subscriptionName !== undefined) out.subscriptionName = sub.subscriptionName;
  if (sub.description !== undefined) out.description = sub.description;
  if (sub.entities) {
    out.entities = sub.entities.map((e) => {
      const r: Record<string, unknown> = {};
      if (e.id !== undefined) r.id = e.id;
      if (e.idPattern !== undefined) r.idPattern = e.idPattern;
      r.type = compactTypeExpr(e.typeExpr, e.type, compact);
      return r;
    });
  }
  if (sub.watchedAttributes) out.watchedAttributes = sub.watchedAttributes.map(compact);
  out.notificationTrigger = sub.notificationTrigger;
  if (sub.timeInterval !== undefined) out.timeInterval = sub.timeInterval;
  if (sub.q !== undefined) out.q = sub.q;
  if (sub.geoQ) {
    out.geoQ = {
      geometry: sub.geoQ.geometry,
      coordinates: sub.geoQ.coordinates,
      georel: sub.geoQ.georel,
      geoproperty: compact(sub.geoQ.geoproperty),
    };
  }
  if (sub.scopeQ !== undefined) out.scopeQ = sub.scopeQ;
  if (sub.csf !== undefined) out.csf = sub.csf;
  if (sub.lang !== undefined) out.lang = sub.lang;
  if (sub.datasetId) out.datasetId = sub.datasetId;
  if (!sub.isActive || sub.isActiveGiven) out.isActive = sub.isActive;
  if (sub.expiresAt !== undefined) out.expiresAt = sub.expiresAt;
  if (sub.throttling !== undefined) out.throttling = sub.throttling;
  if (sub.jsonldContext !== undefined) out.jsonldContext = sub.jsonldContext;
  const n = notificationToPayload(sub.notification, compact);
  if (delivery) {
    if (delivery.status) n.status = delivery.status;
    // counters appear once something was sent (a fresh subscription echoes what was created)
    if (delivery.timesSent) n.timesSent = delivery.timesSent;
    if (delivery.timesFailed) n.timesFailed = delivery.timesFailed;
    if (delivery.lastNotification) n.lastNotification = delivery.lastNotification;
    if (delivery.lastSuccess) n.lastSuccess = delivery.lastSuccess;
    if (delivery.lastFailure) n.lastFailure = delivery.lastFailure;
    if (delivery.deadLetters) n.deadLetters = delivery.deadLetters;
  }
  out.notification = n;
  out.status = subscriptionStatus(sub, now);
  if (opts.sysAttrs) {
    out.createdAt = sub.createdAt;
    out.modifiedAt = sub.modifiedAt;
  }
  return out;
}

/** Re-compacts a type selection; a single plain type keeps the original term when it compacts to it. */
function compactTypeExpr(dnf: string[][], original: string, compact: (iri: string) => string): string {
  if (dnf.length === 1 && dnf[0].length === 1) return compact(dnf[0][0]);
  if (/[;()]/.test(original)) return original;
  return dnf.map((g) => g.map(compact).join(';')).join(',');
}
