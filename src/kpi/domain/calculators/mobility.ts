/** Calculators over traffic observations: travel time index. */
import type { CalcInput, CalcResult, Calculator } from '../types.ts';
import { inWindow, list, localTime, mean, newInputs, ofType, round, series, used } from './util.ts';
import { assetLengthKm } from './inventory.ts';

const inRanges = (h: number, ranges: number[][]) => ranges.some(([a, b]) => h >= a && h < b);

/** ---- EC: I: T: 5A Travel Time Index ---- */
export const travelTimeIndex: Calculator = {
  code: 'EC: I: T: 5A',
  description:
    'Peak travel time / free-flow travel time over TrafficFlowObserved locations, from averageVehicleSpeed history (km/h). Per location travel time = length x mean(1/speed) over peak samples (weekdays, peakHours, default 07-09 and 16-19 local) and over free-flow samples (freeFlowHours, default 22-05, all days); length from the referenced RoadSegment, else 1. Index = sum of peak times / sum of free-flow times over locations with both.',
  unit: 'ratio',
  reads: [
    { entityType: 'TrafficFlowObserved', attrs: ['averageVehicleSpeed', 'refRoadSegment'], history: ['averageVehicleSpeed'] },
    { entityType: 'RoadSegment', attrs: ['location', 'length'], optional: true },
  ],
  profileKeys: [],
  params: { peakHours: [[7, 9], [16, 19]], freeFlowHours: [[22, 24], [0, 5]], utcOffsetHours: 0 },
  compute(input: CalcInput): CalcResult {
    const inp = newInputs(input);
    const peakHours = (input.params?.peakHours ?? this.params!.peakHours) as number[][];
    const freeHours = (input.params?.freeFlowHours ?? this.params!.freeFlowHours) as number[][];
    const off = Number(input.params?.utcOffsetHours ?? 0);
    const flows = ofType(input, 'TrafficFlowObserved');
    const segs = new Map(ofType(input, 'RoadSegment').map((s) => [s.id, s]));
    used(inp, 'TrafficFlowObserved', flows, ['averageVehicleSpeed', 'refRoadSegment']);
    if (segs.size) used(inp, 'RoadSegment', [...segs.values()], ['location', 'length']);
    let peak = 0;
    let free = 0;
    let n = 0;
    for (const f of flows) {
      const s = inWindow(series(input, f.id, 'averageVehicleSpeed'), inp.window.from, inp.window.to).filter((x) => x.v > 0);
      const p: number[] = [];
      const q: number[] = [];
      for (const x of s) {
        const { hour, weekday } = localTime(x.t, off);
        if (weekday <= 5 && inRanges(hour, peakHours)) p.push(1 / x.v);
        if (inRanges(hour, freeHours)) q.push(1 / x.v);
      }
      if (!p.length || !q.length) continue;
      const seg = segs.get(list(f, 'refRoadSegment')[0] ?? '');
      const len = (seg && assetLengthKm(seg, 'km')) || 1;
      const tp = len * mean(p)!;
      const tq = len * mean(q)!;
      inp.figures[`peakMin@${f.id}`] = round(tp * 60, 3);
      inp.figures[`freeFlowMin@${f.id}`] = round(tq * 60, 3);
      peak += tp;
      free += tq;
      n++;
    }
    inp.figures.locations = n;
    if (!n || free <= 0) {
      inp.notes.push('no location with both peak and free-flow speed samples');
      return { value: null, unit: 'ratio', inputs: inp };
    }
    return { value: round(peak / free), unit: 'ratio', inputs: inp };
  },
};
