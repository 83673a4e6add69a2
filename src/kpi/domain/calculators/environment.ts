/** Calculators over environmental observations: air quality annual means, noise exposure. */
import type { CalcInput, CalcResult, Calculator } from '../types.ts';
import { energeticMean, inWindow, lden, mean, meanOfDailyMeans, newInputs, num, ofType, profileValue, round, series, used } from './util.ts';

export const POLLUTANTS = ['pm10', 'pm25', 'no2', 'so2', 'o3'] as const;

/** ---- EN: EN: AQ: 1C Air Pollution ---- */
export const airPollution: Calculator = {
  code: 'EN: EN: AQ: 1C',
  description:
    'Mean concentration (µg/m3) per pollutant over the period from AirQualityObserved history (pm10, pm25, no2, so2, o3): per station the mean of daily means (UTC days), then the mean over stations with data. Each pollutant is a data point.',
  unit: 'µg/m3 (period mean per pollutant)',
  reads: [{ entityType: 'AirQualityObserved', attrs: [...POLLUTANTS], history: [...POLLUTANTS] }],
  profileKeys: [],
  params: { minDays: 1 },
  compute(input: CalcInput): CalcResult {
    const inp = newInputs(input);
    const minDays = Number(input.params?.minDays ?? this.params!.minDays);
    const stations = ofType(input, 'AirQualityObserved');
    used(inp, 'AirQualityObserved', stations, [...POLLUTANTS]);
    const dataPoints: Record<string, number | null> = {};
    for (const p of POLLUTANTS) {
      const means: number[] = [];
      for (const st of stations) {
        const s = inWindow(series(input, st.id, p), inp.window.from, inp.window.to);
        const m = meanOfDailyMeans(s);
        if (m.mean === null) continue;
        if (m.days < minDays) {
          inp.notes.push(`${st.id} ${p}: ${m.days} day(s) of data, below minDays=${minDays}, ignored`);
          continue;
        }
        means.push(m.mean);
        inp.figures[`${p}@${st.id}`] = round(m.mean, 3);
        inp.figures[`${p}@${st.id}:days`] = m.days;
      }
      const v = mean(means);
      dataPoints[p] = v === null ? null : round(v, 3);
      inp.figures[`${p}:stations`] = means.length;
    }
    return { value: null, dataPoints, unit: this.unit, inputs: inp };
  },
};

/** ---- EN: EN: EQ: 2A Noise Exposure ---- */
export const noiseExposure: Calculator = {
  code: 'EN: EN: EQ: 2A',
  description:
    'Share of inhabitants exposed to Lden above thresholdDb (default 55 dB, EU END / WHO): per NoiseLevelObserved station Lden from LAeq history (day 07-19, evening 19-23 +5 dB, night 23-07 +10 dB, local = UTC + utcOffsetHours; energetic mean of all samples when a part has no data). Exposed share = sum of station population (inhabitants represented) above the threshold / profile population x 100; when stations carry no population, the share of stations above the threshold is used as a proxy (noted).',
  unit: '%',
  reads: [{ entityType: 'NoiseLevelObserved', attrs: ['LAeq', 'population'], history: ['LAeq'] }],
  profileKeys: ['population'],
  params: { thresholdDb: 55, utcOffsetHours: 0 },
  compute(input: CalcInput): CalcResult {
    const inp = newInputs(input);
    const threshold = Number(input.params?.thresholdDb ?? this.params!.thresholdDb);
    const off = Number(input.params?.utcOffsetHours ?? this.params!.utcOffsetHours);
    const stations = ofType(input, 'NoiseLevelObserved');
    used(inp, 'NoiseLevelObserved', stations, ['LAeq', 'population']);
    inp.figures.thresholdDb = threshold;
    let withData = 0;
    let exposedStations = 0;
    let exposedPop = 0;
    let weighted = true;
    for (const st of stations) {
      const s = inWindow(series(input, st.id, 'LAeq'), inp.window.from, inp.window.to);
      if (!s.length) continue;
      withData++;
      const r = lden(s, off);
      let level = r.lden;
      if (level === null) {
        level = energeticMean(s.map((x) => x.v));
        inp.notes.push(`${st.id}: day/evening/night not all covered, energetic mean LAeq used`);
      }
      inp.figures[`Lden@${st.id}`] = round(level!, 2);
      const pop = num(st, 'population');
      if (pop === null) weighted = false;
      if (level! > threshold) {
        exposedStations++;
        exposedPop += pop ?? 0;
      }
    }
    inp.figures.stationsWithData = withData;
    inp.figures.stationsAboveThreshold = exposedStations;
    if (!withData) {
      inp.notes.push('no LAeq data in the period');
      return { value: null, unit: '%', inputs: inp };
    }
    const pop = profileValue(input, inp, 'population');
    if (weighted && pop) {
      inp.figures.exposedPopulation = exposedPop;
      return { value: round((exposedPop / pop) * 100), unit: '%', inputs: inp };
    }
    inp.notes.push('station population not available: share of monitoring stations above the threshold used as a proxy');
    return { value: round((exposedStations / withData) * 100), unit: '%', inputs: inp };
  },
};
