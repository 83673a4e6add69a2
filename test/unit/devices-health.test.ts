import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock.ts';
import { healthConfig, healthIssues, initialHealth, onMalformed, onMeasure, onTick, silentAt, type HealthChange, type HealthState } from '../../src/devices/domain/health.ts';
import { generateToken, hashSecret, hashToken, parseMqttUsername, tokenFingerprint, verifySecret } from '../../src/devices/domain/credentials.ts';
import { demoDevices, demoMeasures, demoProvisioning, lightsOn, localHour, toUltralight, trafficShape } from '../../src/devices/domain/demo-city.ts';
import { parseDevicesBody, parseGroupsBody, scopeFromHeaders, effectiveDevice } from '../../src/devices/domain/provisioning.ts';
import { mapMeasures } from '../../src/devices/domain/mapping.ts';
import { parseUltralight } from '../../src/devices/domain/payloads.ts';

/** Drive the state machine with a FakeClock: a tick timer re-armed every second, like the module does. */
function harness(spec: Parameters<typeof healthConfig>[0]) {
  const clock = new FakeClock();
  const cfg = healthConfig(spec);
  let state: HealthState = initialHealth();
  const changes: HealthChange[] = [];
  const tick = () => {
    const r = onTick(state, cfg, clock.now());
    state = r.state;
    changes.push(...r.changes);
    clock.setTimer(1000, tick);
  };
  clock.setTimer(1000, tick);
  return {
    clock,
    measure(values: Record<string, unknown>) {
      const r = onMeasure(state, cfg, values, clock.now());
      state = r.state;
      changes.push(...r.changes);
    },
    get state() {
      return state;
    },
    take() {
      return changes.splice(0).map((c) => ('attr' in c ? `${c.kind}:${c.attr}` : c.kind));
    },
  };
}

test('online -> silent -> online with the expected interval', () => {
  const h = harness({ expectedInterval: 10 });
  assert.equal(h.state.connectivity, 'unknown');
  h.clock.advance(60_000);
  assert.deepEqual(h.take(), []); // never seen: not silent, just unknown
  h.measure({ t: 1 });
  assert.deepEqual(h.take(), ['online']);
  h.clock.advance(24_000);
  assert.deepEqual(h.take(), []);
  h.clock.advance(2_000); // 2.5 x 10 s = 25 s without data
  assert.deepEqual(h.take(), ['silent']);
  assert.deepEqual(healthIssues(h.state), ['silent']);
  h.clock.advance(60_000);
  assert.deepEqual(h.take(), []); // reported once
  h.measure({ t: 2 });
  assert.deepEqual(h.take(), ['online']);
  assert.equal(silentAt(h.state, healthConfig({ expectedInterval: 10 })), h.clock.now() + 25_000);
});

test('frozen value: same value for frozenAfter, cleared when it changes', () => {
  const h = harness({ expectedInterval: 10, frozenAfter: 60 });
  h.measure({ t: 20, n: 1 });
  h.take();
  for (let i = 0; i < 5; i++) {
    h.clock.advance(10_000);
    h.measure({ t: 20, n: i + 2 });
  }
  assert.deepEqual(h.take(), []);
  h.clock.advance(10_000);
  h.measure({ t: 20, n: 9 });
  assert.deepEqual(h.take(), ['frozen:t']);
  assert.deepEqual(healthIssues(h.state), ['frozen:t']);
  h.clock.advance(10_000);
  h.measure({ t: 20.5 });
  assert.deepEqual(h.take(), ['unfrozen:t']);
});

test('battery low (fraction or percent) and out-of-range values', () => {
  const h = harness({ ranges: { temperature: [-20, 50] } });
  h.measure({ batteryLevel: 0.5, temperature: 20 });
  assert.deepEqual(h.take(), ['online']);
  h.measure({ batteryLevel: 0.1 });
  assert.deepEqual(h.take(), ['batteryLow']);
  h.measure({ batteryLevel: 9 }); // percent, still low: no new change
  assert.deepEqual(h.take(), []);
  h.measure({ batteryLevel: 80 });
  assert.deepEqual(h.take(), ['batteryOk']);
  h.measure({ temperature: 85 });
  assert.deepEqual(h.take(), ['outOfRange:temperature']);
  assert.deepEqual(healthIssues(h.state), ['outOfRange:temperature']);
  h.measure({ temperature: 86 });
  assert.deepEqual(h.take(), []);
  h.measure({ temperature: 21 });
  assert.deepEqual(h.take(), ['inRange:temperature']);
  assert.equal(onMalformed(h.state).malformed, 1);
});

test('credentials: scrypt hash, constant-time verify, tokens', async () => {
  const stored = await hashSecret('s3cret-pass', { N: 1024 });
  assert.match(stored, /^scrypt\$1024\$8\$1\$[\w-]+\$[\w-]+$/);
  assert.ok(!stored.includes('s3cret-pass'));
  assert.equal(await verifySecret('s3cret-pass', stored), true);
  assert.equal(await verifySecret('s3cret-pass', stored), true); // cached
  assert.equal(await verifySecret('wrong-pass', stored), false);
  assert.equal(await verifySecret('s3cret-pass', 'plain'), false);
  await assert.rejects(hashSecret('short'));
  const t = generateToken();
  assert.ok(t.length >= 32);
  const th = hashToken(t);
  assert.match(th, /^sha256\$/);
  assert.equal(await verifySecret(t, th), true);
  assert.equal(await verifySecret(t + 'x', th), false);
  assert.notEqual(tokenFingerprint(t), tokenFingerprint(generateToken()));
  assert.deepEqual(parseMqttUsername('k1/dev1'), { apikey: 'k1', deviceId: 'dev1', tokenOnly: false });
  assert.deepEqual(parseMqttUsername('dev1'), { deviceId: 'dev1', tokenOnly: false });
  assert.deepEqual(parseMqttUsername('token'), { tokenOnly: true });
});

test('demo city: Santander devices on real coordinates, all kinds, faulty ones', () => {
  const devs = demoDevices();
  const kinds = new Set(devs.map((d) => d.kind));
  assert.deepEqual([...kinds].sort(), ['airQuality', 'electricity', 'noise', 'parking', 'streetlight', 'traffic', 'waste', 'water', 'weather']);
  for (const d of devs) {
    assert.ok(d.lat > 43.44 && d.lat < 43.5 && d.lon > -3.86 && d.lon < -3.75, `${d.id} in Santander`);
  }
  assert.deepEqual(new Set(devs.filter((d) => d.fault).map((d) => d.fault)), new Set(['silent', 'frozen', 'batteryLow', 'outOfRange', 'malformed']));
  assert.equal(new Set(devs.map((d) => d.id)).size, devs.length);
});

test('demo city: provisioning payloads are valid FIWARE payloads and the measures map cleanly', () => {
  const { services, devices } = demoProvisioning();
  const scope = scopeFromHeaders({ 'fiware-servicepath': '/demo' });
  const groups = parseGroupsBody({ services }, scope);
  const devs = parseDevicesBody({ devices }, scope, (k) => groups.find((g) => g.apikey === k));
  const t = Date.parse('2026-03-10T08:30:00Z');
  for (const d of demoDevices()) {
    const dev = devs.find((x) => x.device_id === d.id)!;
    const eff = effectiveDevice(dev, groups.find((g) => g.apikey === dev.apikey));
    const m = demoMeasures(d, t, 0);
    assert.ok(m && typeof m === 'object', d.id);
    const r = mapMeasures(eff, parseUltralight(toUltralight(m as Record<string, number | string>)), { receivedAt: new Date(t).toISOString(), textValues: true });
    assert.deepEqual(r.errors, [], d.id);
    assert.ok(r.updates.length === 1 && Object.keys(r.updates[0].attrs).length >= 2, d.id);
  }
});

test('demo city: daily patterns and faults', () => {
  const at = (h: number) => Date.parse('2026-03-10T00:00:00Z') + (h - 1) * 3_600_000; // local = UTC+1
  assert.equal(Math.round(localHour(at(8))), 8);
  assert.ok(trafficShape(8.5) > 0.8 && trafficShape(3) < 0.15);
  assert.ok(lightsOn(23) && !lightsOn(13));
  const devs = demoDevices();
  const traffic = devs.find((d) => d.kind === 'traffic' && !d.fault)!;
  const rush = demoMeasures(traffic, at(8.5), 5) as Record<string, number>;
  const night = demoMeasures(traffic, at(3.5), 5) as Record<string, number>;
  assert.ok(rush.int > night.int * 3, 'rush hour traffic');
  const silent = devs.find((d) => d.fault === 'silent')!;
  assert.ok(demoMeasures(silent, at(10), 0));
  assert.equal(demoMeasures(silent, at(10), 1), undefined);
  const frozen = devs.find((d) => d.fault === 'frozen')!;
  assert.equal((demoMeasures(frozen, at(10), 5) as Record<string, number>).no2, (demoMeasures(frozen, at(17), 9) as Record<string, number>).no2);
  const malformed = devs.find((d) => d.fault === 'malformed')!;
  assert.equal(typeof demoMeasures(malformed, at(10), 2), 'string');
  const water = devs.find((d) => d.kind === 'water' && !d.fault)!;
  const v1 = (demoMeasures(water, at(10), 1) as Record<string, number>).v;
  const v2 = (demoMeasures(water, at(11), 2) as Record<string, number>).v;
  assert.ok(v2 > v1, 'cumulative meter increases');
});
