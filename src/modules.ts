import type { UrbisModule } from './platform.ts';

/**
 * Platform modules in start order. The broker core is always present (started by src/server);
 * each layer adds itself here with one line.
 */
export const modules: UrbisModule[] = [];
modules.unshift((await import('./trust/module.ts')).trustModule); // trust: identities, authorization, personal data, audit, limits (FIRST: its hooks cover every API)
modules.push((await import('./devices/module.ts')).devicesModule); // devices: IoT Agent API, MQTT/HTTP/LoRaWAN southbound, health, demo city
modules.push((await import('./kpi/module.ts')).kpiModule); // U4SSC KPIs: catalogue, calculators, scoring, frameworks, reports (/kpi/v1)
modules.push((await import('./dashboard/module.ts')).dashboardModule); // operations dashboard: web app at /, live feed /live
modules.push((await import('./rules/module.ts')).rulesModule); // rules and alarms: Alert entities, actions, /rules/v1
modules.push((await import('./subscriptions/module.ts')).subscriptionsModule); // subscriptions: /ngsi-ld/v1/subscriptions, durable outbox, HTTP/MQTT notifications
modules.push((await import('./temporal/module.ts')).temporalModule); // temporal: attribute history (durable on ack), /ngsi-ld/v1/temporal API, retention
