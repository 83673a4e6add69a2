/**
 * Delivery of action plans: webhook (HTTP POST, JSON, retried with backoff), MQTT (mqtt.js, one
 * client per broker URL), e-mail (nodemailer over SMTP), and service requests (NGSI-LD entities
 * through the in-process broker). Each delivery is logged (rule_deliveries) with its outcome.
 */
import mqtt, { type MqttClient } from 'mqtt';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { Broker } from '../ngsi-ld/broker.ts';
import type { ActionPlan } from './domain/types.ts';
import type { DeliveryRecord } from './store.ts';

export interface SmtpSettings {
  /** smtp://user:pass@host:port or smtps://... */
  url?: string;
  host?: string;
  port?: number;
  secure?: boolean;
  user?: string;
  pass?: string;
  /** sender address */
  from: string;
  /** do not try STARTTLS (local receivers) */
  ignoreTLS?: boolean;
}

export interface DeliveryOptions {
  smtp?: SmtpSettings;
  /** default MQTT broker for actions without url */
  mqttUrl?: () => string | undefined;
  /** delays between webhook / e-mail / MQTT attempts (ms) */
  retryDelaysMs: number[];
  webhookTimeoutMs: number;
}

/** SMTP settings from the environment: URBIS_SMTP_URL (or URBIS_SMTP_HOST/PORT/USER/PASS/SECURE), URBIS_SMTP_FROM. */
export function smtpFromEnv(env: NodeJS.ProcessEnv = process.env): SmtpSettings | undefined {
  const from = env.URBIS_SMTP_FROM ?? 'urbis@localhost';
  if (env.URBIS_SMTP_URL) return { url: env.URBIS_SMTP_URL, from };
  if (env.URBIS_SMTP_HOST)
    return {
      host: env.URBIS_SMTP_HOST,
      port: env.URBIS_SMTP_PORT ? Number(env.URBIS_SMTP_PORT) : 587,
      secure: env.URBIS_SMTP_SECURE === 'true',
      user: env.URBIS_SMTP_USER,
      pass: env.URBIS_SMTP_PASS,
      from,
    };
  return undefined;
}

export class Deliverer {
  private mqttClients = new Map<string, Promise<MqttClient>>();
  private mailer?: Transporter;
  private inflight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(
    private opts: DeliveryOptions,
    private clock: Clock,
    private broker: Broker,
    private log: Logger,
    private record: (d: DeliveryRecord) => void,
  ) {}

  deliver(plan: ActionPlan): void {
    if (this.stopped) return;
    const p = this.run(plan).catch((e) => this.log.error('rule action failed', { err: e }));
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** resolves when nothing is being delivered (retries included) */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private async run(plan: ActionPlan): Promise<void> {
    const a = plan.action;
    const target =
      a.type === 'webhook' ? a.url : a.type === 'mqtt' ? `${a.url ?? this.opts.mqttUrl?.() ?? ''}#${a.topic}` : a.type === 'email' ? a.to.join(',') : String(plan.entity?.id ?? '');
    let attempts = 0;
    let error: string | undefined;
    const delays = a.type === 'serviceRequest' ? [] : this.opts.retryDelaysMs;
    for (;;) {
      attempts++;
      try {
        await this.once(plan);
        error = undefined;
        break;
      } catch (e) {
        error = (e as Error).message || String(e);
        if (this.stopped || attempts > delays.length) break;
        await this.sleep(delays[attempts - 1]);
      }
    }
    if (error) this.log.warn('rule action not delivered', { rule: plan.ruleId, alarm: plan.alarmId, action: a.type, target, error });
    this.record({
      at: new Date(this.clock.now()).toISOString(), tenant: plan.tenant, ruleId: plan.ruleId, alarmId: plan.alarmId,
      event: plan.event, action: a.type, target, ok: !error, attempts, ...(error ? { error } : {}),
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimer(ms, resolve));
  }

  private async once(plan: ActionPlan): Promise<void> {
    const a = plan.action;
    switch (a.type) {
      case 'webhook': {
        const res = await fetch(a.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(a.headers ?? {}) },
          body: JSON.stringify(plan.payload),
          signal: AbortSignal.timeout(this.opts.webhookTimeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (!res.ok) throw new Error(`HTTP ${res.status} from ${a.url}`);
        return;
      }
      case 'mqtt': {
        const url = a.url ?? this.opts.mqttUrl?.();
        if (!url) throw new Error('no MQTT broker configured for this action (set its url)');
        const client = await this.mqttClient(url);
        await client.publishAsync(a.topic, JSON.stringify(plan.payload), { qos: a.qos ?? 1 });
        return;
      }
      case 'email': {
        const smtp = this.opts.smtp;
        if (!smtp) throw new Error('e-mail actions need SMTP settings (URBIS_SMTP_URL or URBIS_SMTP_HOST, URBIS_SMTP_FROM)');
        this.mailer ??= nodemailer.createTransport(
          smtp.url
            ? smtp.url
            : {
                host: smtp.host, port: smtp.port, secure: smtp.secure ?? false, ignoreTLS: smtp.ignoreTLS,
                ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.pass ?? '' } } : {}),
              },
        );
        await this.mailer.sendMail({
          from: smtp.from,
          to: a.to,
          subject: a.subject ? `${a.subject} - ${plan.subject}` : plan.subject,
          text: plan.text,
          headers: { 'X-Urbis-Alarm': plan.alarmId, 'X-Urbis-Event': plan.event },
        });
        return;
      }
      case 'serviceRequest': {
        const e = plan.entity!;
        if (plan.event === 'clear') {
          const { id, type: _t, ...attrs } = e;
          try {
            await this.broker.updateAttrs(plan.tenant, id as string, attrs);
          } catch (err) {
            if ((err as { status?: number }).status !== 404) throw err;
          }
        } else {
          const r = await this.broker.upsertEntities(plan.tenant, [e], { mode: 'replace' });
          if (r.errors.length) throw new Error(r.errors[0].error.detail ?? r.errors[0].error.title);
        }
        return;
      }
    }
  }

  private mqttClient(url: string): Promise<MqttClient> {
    let c = this.mqttClients.get(url);
    if (!c) {
      c = mqtt.connectAsync(url, { connectTimeout: 5000, reconnectPeriod: 2000, clientId: `urbis-rules-${Math.random().toString(16).slice(2, 10)}` });
      c.catch(() => this.mqttClients.delete(url));
      this.mqttClients.set(url, c);
    }
    return c;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
    for (const c of this.mqttClients.values()) {
      await c.then((cl) => cl.endAsync(true)).catch(() => {});
    }
    this.mqttClients.clear();
    this.mailer?.close();
  }
}
