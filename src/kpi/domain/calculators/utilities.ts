/** Calculators over utility meters and supply: consumption per capita, outage frequency and duration. */
import { periodDays } from '../period.ts';
import type { CalcInput, CalcResult, Calculator, Sample } from '../types.ts';
import { counterDelta, newInputs, num, ofType, profileValue, round, series, used } from './util.ts';

/** ---- EN: EN: WS: 2C Water Consumption ---- */
export const waterConsumption: Calculator = {
  code: 'EN: EN: WS: 2C',
  description:
    'Litres per capita per day: sum over WaterConsumptionObserved meters (waterConsumption) and WaterMeter entities (cumulativeWaterConsumption) of the increase of the cumulative reading (m3) over the period (from the last reading at or before the start; a decreasing reading counts as a meter reset) x 1000 / population / days in the period.',
  unit: 'litres per capita per day',
  reads: [
    { entityType: 'WaterConsumptionObserved', attrs: ['waterConsumption'], history: ['waterConsumption'] },
    { entityType: 'WaterMeter', attrs: ['cumulativeWaterConsumption'], history: ['cumulativeWaterConsumption'], optional: true },
  ],
  profileKeys: ['population'],
  compute(input: CalcInput): CalcResult {
    const inp = newInputs(input);
    const meters: { id: string; attr: string }[] = [];
    for (const [t, attr] of [['WaterConsumptionObserved', 'waterConsumption'], ['WaterMeter', 'cumulativeWaterConsumption']]) {
      const es = ofType(input, t);
      if (!es.length) continue;
      used(inp, t, es, [attr]);
      es.forEach((e) => meters.push({ id: e.id, attr }));
    }
    let m3 = 0;
    let withData = 0;
    for (const m of meters) {
      const r = counterDelta(series(input, m.id, m.attr), inp.window.from, inp.window.to);
      if (r.readings < 2) continue;
      withData++;
      m3 += r.delta;
      if (r.resets) inp.notes.push(`${m.id}: ${r.resets} meter reset(s)`);
    }
    const days = periodDays(input.period);
    inp.figures.totalM3 = round(m3, 3);
    inp.figures.metersWithData = withData;
    inp.figures.days = round(days, 4);
    const pop = profileValue(input, inp, 'population');
    if (!pop || !withData) {
      inp.notes.push(!pop ? 'city profile has no population' : 'no meter with two readings in the period');
      return { value: null, unit: this.unit, inputs: inp };
    }
    return { value: round((m3 * 1000) / pop / days, 3), unit: this.unit, inputs: inp };
  },
};

/** ---- EN: E: E: 2C Electricity Consumption ---- */
export const electricityConsumption: Calculator = {
  code: 'EN: E: E: 2C',
  description:
    'kWh per capita per year: sum over ThreePhaseAcMeasurement / ACMeasurement / ElectricityMeter meters of the increase of totalActiveEnergyImport (kWh, cumulative) over the period / population, annualised (x 365 / days) for windows shorter than a year (e.g. the running year).',
  unit: 'kWh per capita per year',
  reads: [
    { entityType: 'ThreePhaseAcMeasurement', attrs: ['totalActiveEnergyImport'], history: ['totalActiveEnergyImport'] },
    { entityType: 'ACMeasurement', attrs: ['totalActiveEnergyImport'], history: ['totalActiveEnergyImport'], optional: true },
    { entityType: 'ElectricityMeter', attrs: ['totalActiveEnergyImport'], history: ['totalActiveEnergyImport'], optional: true },
  ],
  profileKeys: ['population'],
  compute(input: CalcInput): CalcResult {
    const inp = newInputs(input);
    let kwh = 0;
    let withData = 0;
    for (const t of ['ThreePhaseAcMeasurement', 'ACMeasurement', 'ElectricityMeter']) {
      const meters = ofType(input, t);
      if (!meters.length) continue;
      used(inp, t, meters, ['totalActiveEnergyImport']);
      for (const m of meters) {
        const r = counterDelta(series(input, m.id, 'totalActiveEnergyImport'), inp.window.from, inp.window.to);
        if (r.readings < 2) continue;
        withData++;
        kwh += r.delta;
      }
    }
    const days = periodDays(input.period);
    // a full year counts as is; shorter windows (quarter, month, the running year) are annualised
    const factor = days >= 365 ? 1 : 365 / days;
    inp.figures.totalKwh = round(kwh, 3);
    inp.figures.metersWithData = withData;
    inp.figures.annualisationFactor = round(factor, 6);
    const pop = profileValue(input, inp, 'population');
    if (!pop || !withData) {
      inp.notes.push(!pop ? 'city profile has no population' : 'no meter with two readings in the period');
      return { value: null, unit: this.unit, inputs: inp };
    }
    return { value: round((kwh / pop) * factor, 3), unit: this.unit, inputs: inp };
  },
};

export interface Interruption {
  entityId: string;
  start: string;
  end: string;
  minutes: number;
  customers: number;
  ongoing: boolean;
}

/**
 * Interruptions in a supply series (v >= 0.5 supplied, v < 0.5 interrupted) within [from, to): an
 * interruption runs from the first interrupted sample to the next supplied one (clipped to the
 * window); those shorter than minMinutes (momentary) are dropped.
 */
export function interruptions(id: string, s: Sample[], from: string, to: string, customers: number, minMinutes: number): Interruption[] {
  const a = Date.parse(from);
  const b = Date.parse(to);
  const out: Interruption[] = [];
  const before = s.filter((x) => Date.parse(x.t) <= a);
  let down: number | null = before.length && before[before.length - 1].v < 0.5 ? a : null;
  const close = (endT: number, ongoing: boolean) => {
    const minutes = (endT - down!) / 60_000;
    if (minutes >= minMinutes)
      out.push({ entityId: id, start: new Date(down!).toISOString(), end: new Date(endT).toISOString(), minutes, customers, ongoing });
    down = null;
  };
  for (const x of s) {
    const t = Date.parse(x.t);
    if (t <= a || t >= b) continue;
    if (x.v < 0.5 && down === null) down = t;
    else if (x.v >= 0.5 && down !== null) close(t, false);
  }
  if (down !== null) close(b, true);
  return out;
}

function outageCalc(code: string, which: 'frequency' | 'duration'): Calculator {
  const desc =
    which === 'frequency'
      ? 'SAIFI: sum over sustained interruptions (>= minMinutes, default 3) of the customers served by the interrupted ElectricitySupplyPoint / total customers (electricityCustomers from the profile, else the sum of customersServed). Interruptions are runs of powerSupply < 0.5 in the history of powerSupply (1 supplied, 0 interrupted).'
      : 'CAIDI: sum of customer interruption minutes / number of customer interruptions over sustained interruptions (>= minMinutes, default 3) of ElectricitySupplyPoint entities (powerSupply history, customersServed).';
  return {
    code,
    description: desc,
    unit: which === 'frequency' ? 'interruptions per customer' : 'minutes',
    reads: [{ entityType: 'ElectricitySupplyPoint', attrs: ['customersServed', 'powerSupply'], history: ['powerSupply'] }],
    profileKeys: which === 'frequency' ? ['electricityCustomers'] : [],
    params: { minMinutes: 3 },
    compute(input: CalcInput): CalcResult {
      const inp = newInputs(input);
      const minMinutes = Number(input.params?.minMinutes ?? 3);
      const points = ofType(input, 'ElectricitySupplyPoint');
      used(inp, 'ElectricitySupplyPoint', points, ['customersServed', 'powerSupply']);
      let served = 0;
      const events: Interruption[] = [];
      let withData = 0;
      for (const p of points) {
        const c = num(p, 'customersServed') ?? 0;
        served += c;
        const s = series(input, p.id, 'powerSupply');
        if (s.length) withData++;
        events.push(...interruptions(p.id, s, inp.window.from, inp.window.to, c, minMinutes));
      }
      const ci = events.reduce((a, e) => a + e.customers, 0);
      const cmi = events.reduce((a, e) => a + e.customers * e.minutes, 0);
      inp.figures.interruptions = events.length;
      inp.figures.customerInterruptions = ci;
      inp.figures.customerMinutesInterrupted = round(cmi, 3);
      inp.figures.supplyPointsWithData = withData;
      if (events.some((e) => e.ongoing)) inp.notes.push('an interruption is still ongoing at the end of the window');
      if (which === 'frequency') {
        const total = profileValue(input, inp, 'electricityCustomers') ?? (served || null);
        if (!total || !withData) {
          inp.notes.push(!withData ? 'no powerSupply history' : 'no customer count');
          return { value: null, unit: this.unit, inputs: inp };
        }
        inp.figures.customersServed = total;
        return { value: round(ci / total, 4), unit: this.unit, inputs: inp };
      }
      if (!withData) {
        inp.notes.push('no powerSupply history');
        return { value: null, unit: this.unit, inputs: inp };
      }
      return { value: ci > 0 ? round(cmi / ci, 3) : 0, unit: this.unit, inputs: inp };
    },
  };
}

export const outageFrequency = outageCalc('EC: I: ES: 1C', 'frequency');
export const outageTime = outageCalc('EC: I: ES: 2C', 'duration');
