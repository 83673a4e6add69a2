/**
 * Action planning and entity shapes (pure): what to send on raise / reopen / acknowledge / clear,
 * the Smart Data Models `Alert` entity mirroring an alarm, the Open311-like `ServiceRequest` entity
 * for a crew, and the `Rule` entity mirroring a rule. Entities are NGSI-LD normalized JSON with terms
 * (compacted against the core context plus the default vocabulary).
 */
import type { AlarmRecord } from './alarms.ts';
import { ALERT_ID_PREFIX } from './alarms.ts';
import type { ActionPlan, AlarmTransition, Rule } from './types.ts';
import { RULE_ID_PREFIX, ruleToInput } from './validate.ts';

export const SERVICE_REQUEST_ID_PREFIX = 'urn:ngsi-ld:ServiceRequest:';

const iso = (ms: number) => new Date(ms).toISOString();
const dt = (ms: number) => ({ type: 'Property', value: { '@type': 'DateTime', '@value': iso(ms) } });
const prop = (value: unknown) => ({ type: 'Property', value });

/** Which actions fire for a transition. `update` transitions (lastSeen, count) notify nobody. */
export function planActions(rule: Rule, t: AlarmTransition): ActionPlan[] {
  if (t.event === 'update') return [];
  const a = t.alarm as AlarmRecord;
  const out: ActionPlan[] = [];
  for (const action of rule.actions) {
    if (!action.on.includes(t.event)) continue;
    // a flapping alarm: after its first clear, further clears are only told to those told of reopens
    if (t.event === 'clear' && (a.clears ?? 0) > 0 && !action.on.includes('reopen')) continue;
    const subject = `[${a.severity.toUpperCase()}] ${verb(t.event)}: ${rule.name} - ${a.entityId}`;
    const plan: ActionPlan = {
      action,
      event: t.event,
      alarmId: a.id,
      ruleId: rule.id,
      tenant: rule.tenant,
      payload: alarmPayload(t.event, a, rule),
      subject,
      text: messageText(t.event, a, rule),
    };
    if (action.type === 'serviceRequest') {
      if (t.event === 'raise' || t.event === 'reopen') plan.entity = serviceRequestEntity(a, rule, action);
      else if (t.event === 'clear') plan.entity = serviceRequestClose(a);
      else continue;
    }
    out.push(plan);
  }
  return out;
}

function verb(e: string): string {
  return e === 'raise' ? 'Alarm raised' : e === 'reopen' ? 'Alarm reopened' : e === 'acknowledge' ? 'Alarm acknowledged' : 'Alarm cleared';
}

export function alarmJson(a: AlarmRecord): Record<string, unknown> {
  return {
    id: a.id,
    tenant: a.tenant,
    ruleId: a.ruleId,
    entityId: a.entityId,
    ...(a.entityType ? { entityType: a.entityType } : {}),
    severity: a.severity,
    category: a.category,
    ...(a.subCategory ? { subCategory: a.subCategory } : {}),
    description: a.description,
    status: a.status,
    firstSeen: iso(a.firstSeen),
    lastSeen: iso(a.lastSeen),
    count: a.count,
    ...(a.acknowledgedAt !== undefined ? { acknowledgedAt: iso(a.acknowledgedAt), acknowledgedBy: a.acknowledgedBy } : {}),
    ...(a.clearedAt !== undefined ? { clearedAt: iso(a.clearedAt), clearedBy: a.clearedBy } : {}),
    ...(a.note ? { note: a.note } : {}),
    ...(a.value !== undefined ? { value: a.value } : {}),
    ...(a.location !== undefined ? { location: a.location } : {}),
    ...(a.serviceRequestId ? { serviceRequestId: a.serviceRequestId } : {}),
  };
}

export function alarmPayload(event: string, a: AlarmRecord, rule: Rule): Record<string, unknown> {
  return { event, rule: { id: rule.id, name: rule.name }, alarm: alarmJson(a) };
}

function messageText(event: string, a: AlarmRecord, rule: Rule): string {
  const lines = [
    `${verb(event)} by rule "${rule.name}" (${rule.id}).`,
    '',
    a.description,
    '',
    `Entity:    ${a.entityId}${a.entityType ? ` (${a.entityType})` : ''}`,
    `Severity:  ${a.severity}    Category: ${a.category}${a.subCategory ? ` / ${a.subCategory}` : ''}`,
    `Status:    ${a.status}    Occurrences: ${a.count}`,
    `First seen: ${iso(a.firstSeen)}    Last seen: ${iso(a.lastSeen)}`,
  ];
  if (a.value !== undefined) lines.push(`Value:     ${JSON.stringify(a.value)}`);
  if (a.acknowledgedBy) lines.push(`Acknowledged by ${a.acknowledgedBy} at ${iso(a.acknowledgedAt!)}`);
  if (a.clearedBy) lines.push(`Cleared by ${a.clearedBy} at ${iso(a.clearedAt!)}`);
  lines.push('', `Alarm: ${a.id}`);
  return lines.join('\n');
}

/** Smart Data Models Alert (dataModel.Alert) for an alarm, plus alarm lifecycle attributes. */
export function alertEntity(a: AlarmRecord, rule: Rule | undefined): Record<string, unknown> {
  const e: Record<string, unknown> = {
    id: a.id,
    type: 'Alert',
    category: prop(a.category),
    severity: prop(a.severity),
    description: prop(a.description),
    name: prop(rule?.name ?? a.ruleId),
    alertSource: { type: 'Relationship', object: a.entityId },
    dateIssued: dt(a.firstSeen),
    validFrom: dt(a.firstSeen),
    alarmStatus: prop(a.status),
    count: prop(a.count),
    lastSeen: dt(a.lastSeen),
    rule: { type: 'Relationship', object: RULE_ID_PREFIX + a.ruleId },
  };
  if (a.subCategory) e.subCategory = prop(a.subCategory);
  if (a.entityType) e.alertSourceType = prop(a.entityType);
  if (a.value !== undefined) e.alertData = prop(a.value); // SDM `data` is a reserved core-context term
  if (a.acknowledgedAt !== undefined) {
    e.acknowledgedAt = dt(a.acknowledgedAt);
    if (a.acknowledgedBy) e.acknowledgedBy = prop(a.acknowledgedBy);
  }
  if (a.clearedAt !== undefined) {
    e.validTo = dt(a.clearedAt);
    if (a.clearedBy) e.clearedBy = prop(a.clearedBy);
  }
  if (a.note) e.note = prop(a.note);
  if (a.serviceRequestId) e.serviceRequest = { type: 'Relationship', object: a.serviceRequestId };
  if (isGeometry(a.location)) e.location = { type: 'GeoProperty', value: a.location };
  return e;
}

function isGeometry(v: unknown): boolean {
  return !!v && typeof v === 'object' && typeof (v as { type?: unknown }).type === 'string' && Array.isArray((v as { coordinates?: unknown }).coordinates);
}

export function serviceRequestIdFor(alarmId: string): string {
  return SERVICE_REQUEST_ID_PREFIX + alarmId.slice(ALERT_ID_PREFIX.length);
}

/** Open311 GeoReport v2 attribute names (Smart Data Models IssueTracking Open311_ServiceRequest). */
export function serviceRequestEntity(
  a: AlarmRecord,
  rule: Rule,
  action: { serviceCode: string; serviceName?: string; agency?: string },
): Record<string, unknown> {
  const id = serviceRequestIdFor(a.id);
  const e: Record<string, unknown> = {
    id,
    type: 'ServiceRequest',
    service_request_id: prop(id.slice(SERVICE_REQUEST_ID_PREFIX.length)),
    service_code: prop(action.serviceCode),
    service_name: prop(action.serviceName ?? rule.name),
    description: prop(a.description),
    request_status: prop('open'), // Open311 `status`; `status` is a reserved core-context term
    status_notes: prop(`Opened by alarm ${a.id} (rule ${rule.id})`),
    requested_datetime: dt(a.lastSeen),
    updated_datetime: dt(a.lastSeen),
    alert: { type: 'Relationship', object: a.id },
    refEntity: { type: 'Relationship', object: a.entityId },
  };
  if (action.agency) e.agency_responsible = prop(action.agency);
  if (isGeometry(a.location)) e.location = { type: 'GeoProperty', value: a.location };
  return e;
}

/** attributes to update on the service request when its alarm clears */
export function serviceRequestClose(a: AlarmRecord): Record<string, unknown> {
  return {
    id: serviceRequestIdFor(a.id),
    type: 'ServiceRequest',
    request_status: prop('closed'),
    status_notes: prop(`Alarm cleared${a.clearedBy ? ` by ${a.clearedBy}` : ''}`),
    updated_datetime: dt(a.clearedAt ?? a.lastSeen),
  };
}

/** The NGSI-LD entity mirroring a rule (type Rule); rule parts are JsonProperty values. */
export function ruleEntity(rule: Rule): Record<string, unknown> {
  const json = (v: unknown) => ({ type: 'JsonProperty', json: v });
  const input = ruleToInput(rule);
  const e: Record<string, unknown> = {
    id: RULE_ID_PREFIX + rule.id,
    type: 'Rule',
    name: prop(rule.name),
    enabled: prop(rule.enabled),
    triggerKind: prop(rule.trigger.kind),
    select: json(input.select),
    trigger: json(input.trigger),
    alarm: json(input.alarm),
    actions: json(input.actions),
  };
  if (rule.description) e.description = prop(rule.description);
  return e;
}
