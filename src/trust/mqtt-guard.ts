/**
 * MQTT limits for the device layer: connections per client address, message rate per client id,
 * message size. The device layer calls these from its aedes hooks (see docs/security.md).
 */
import type { MqttGuard } from './api.ts';
import { RateLimiter, type RateSpec } from './rate-limit.ts';
import type { Clock } from '../common/clock.ts';

export class MqttLimits implements MqttGuard {
  private conns = new Map<string, number>();
  private rl: RateLimiter;
  constructor(
    clock: Clock,
    private o: { maxConnectionsPerIp: number; perClient: RateSpec; maxMessageBytes: number },
    private enabled = true,
  ) {
    this.rl = new RateLimiter(clock);
  }
  onConnect(_clientId: string, ip: string | undefined): boolean {
    if (!this.enabled) return true;
    const k = ip ?? '?';
    const n = this.conns.get(k) ?? 0;
    if (this.o.maxConnectionsPerIp > 0 && n >= this.o.maxConnectionsPerIp) return false;
    this.conns.set(k, n + 1);
    return true;
  }
  onDisconnect(clientId: string, ip: string | undefined): void {
    const k = ip ?? '?';
    const n = (this.conns.get(k) ?? 0) - 1;
    if (n <= 0) this.conns.delete(k);
    else this.conns.set(k, n);
    this.rl.reset(clientId);
  }
  onPublish(clientId: string, bytes: number): boolean {
    if (!this.enabled) return true;
    if (this.o.maxMessageBytes > 0 && bytes > this.o.maxMessageBytes) return false;
    return this.rl.take(clientId, this.o.perClient) === 0;
  }
}
