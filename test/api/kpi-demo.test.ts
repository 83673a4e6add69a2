import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';
import { kpiModule } from '../../src/kpi/module.ts';
import { FakeClock } from '../../src/common/clock.ts';
import type { KpiService } from '../../src/kpi/service.ts';

test('demo city: automatic KPIs have values after start and a report can be downloaded', async () => {
  const clock = new FakeClock(Date.parse('2026-03-15T12:00:00Z'));
  const s = await testPlatform({ modules: [kpiModule], clock, config: { demo: true } });
  try {
    const svc = s.platform.services.get('kpi') as KpiService;
    clock.advance(5000); // the first scheduled recompute
    await svc.tick(); // (waits for it if still running; recomputes year and month)
    const vals = (await s.inject({ url: '/kpi/v1/values?period=2026&explain=false' })).json() as { code: string; dataPoint: string; value: number | null }[];
    const v = (code: string, dp = '') => vals.find((x) => x.code === code && x.dataPoint === dp)?.value;
    assert.equal(v('EC: ICT: ICT: 5C'), 6);
    assert.equal(v('EC: ICT: T: 3A'), 50);
    assert.equal(v('EC: ICT: T: 1C'), 37.5); // 3 of 8 stops (profile)
    assert.equal(v('EC: ICT: PS: 1A'), 80);
    assert.ok((v('EN: EN: PSN: 1C') ?? 0) > 0);
    const sc = (await s.inject({ url: '/kpi/v1/scores?period=2026' })).json();
    assert.ok(sc.overall.scored > 0);
    const html = await s.inject({ url: '/kpi/v1/reports?period=2026&format=html' });
    assert.equal(html.statusCode, 200);
    assert.match(html.body, /Santander \(demo\)/);
    const csv = await s.inject({ url: '/kpi/v1/reports?period=2026&format=csv' });
    assert.match(csv.headers['content-disposition'] as string, /attachment; filename="kpi-report-default-2026.csv"/);
  } finally {
    await s.close();
  }
});
