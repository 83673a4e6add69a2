/**
 * Drives a RuleEngine with a Clock: feeds change events, keeps exactly one timer armed for the
 * engine's next deadline, and hands every output batch to `onOutput`. No I/O of its own; with a
 * FakeClock, `clock.advance()` runs hold / absence / hysteresis timers synchronously.
 */
import type { ChangeEvent } from '../../bus/change-bus.ts';
import type { Clock } from '../../common/clock.ts';
import type { EngineOutput, RuleEngine } from './engine.ts';

export class EngineDriver {
  private cancel?: () => void;
  private armedAt?: number;
  private stopped = false;

  constructor(
    readonly engine: RuleEngine,
    private clock: Clock,
    private onOutput: (out: EngineOutput) => void,
  ) {}

  process(events: ChangeEvent[]): void {
    this.engine.process(events, this.clock.now());
    this.flush();
  }

  /** run due deadlines now (also used after a restart to catch up) */
  tick(): void {
    this.engine.tick(this.clock.now());
    this.flush();
  }

  /** call after anything else changed the engine (rules, acks, loaded state) */
  flush(): void {
    const out = this.engine.drain();
    if (out.transitions.length || out.plans.length || out.states.length) this.onOutput(out);
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    const next = this.engine.nextDeadline();
    if (next === this.armedAt) return;
    this.cancel?.();
    this.cancel = undefined;
    this.armedAt = next;
    if (next === undefined) return;
    // timers beyond ~24 days overflow setTimeout; re-arm in steps
    const delay = Math.min(Math.max(0, next - this.clock.now()), 2 ** 31 - 1);
    this.cancel = this.clock.setTimer(delay, () => {
      this.cancel = undefined;
      this.armedAt = undefined;
      this.tick();
    });
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
    this.cancel = undefined;
  }
}
