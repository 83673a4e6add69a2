/**
 * Token buckets keyed by principal (API key, user, OIDC subject) or client address, on an injectable
 * clock. `take` answers allowed, or the seconds until a token is back (for Retry-After). The map is
 * bounded: idle full buckets are dropped first, so a flood of distinct keys cannot exhaust memory.
 */
import type { Clock } from '../common/clock.ts';

export interface RateSpec {
  /** tokens added per second */
  rate: number;
  /** bucket size (largest burst) */
  burst: number;
}

export class RateLimiter {
  private buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private clock: Clock,
    private maxKeys = 100_000,
  ) {}

  /** take `cost` tokens; returns 0 when allowed, else seconds to wait (>= 1) */
  take(key: string, spec: RateSpec, cost = 1): number {
    if (spec.rate <= 0 && spec.burst <= 0) return 0; // disabled
    const now = this.clock.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.evict(now, spec);
      b = { tokens: spec.burst, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(spec.burst, b.tokens + ((now - b.at) / 1000) * spec.rate);
      b.at = now;
    }
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return 0;
    }
    const need = cost - b.tokens;
    return spec.rate > 0 ? Math.max(1, Math.ceil(need / spec.rate)) : 3600;
  }

  private evict(now: number, spec: RateSpec) {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * spec.rate >= spec.burst) this.buckets.delete(k);
    }
    if (this.buckets.size >= this.maxKeys) {
      // still full: drop the oldest tenth
      let n = Math.ceil(this.maxKeys / 10);
      for (const k of this.buckets.keys()) {
        this.buckets.delete(k);
        if (--n <= 0) break;
      }
    }
  }

  reset(key: string) {
    this.buckets.delete(key);
  }

  get size() {
    return this.buckets.size;
  }
}
