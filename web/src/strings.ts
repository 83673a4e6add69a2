/**
 * Every user-visible string of the dashboard, in one place for translation.
 * Add a language by copying `en` and listing it in `catalogs`; `t()` falls back to English.
 * Placeholders: {name} is replaced by the matching key of `vars`.
 */
const en = {
  appTitle: 'Urbis city operations',
  skipToContent: 'Skip to main content',
  navMap: 'Map',
  navAlarms: 'Alarms',
  navKpi: 'KPI scorecard',
  navDevices: 'Device fleet',
  mainNav: 'Main views',
  liveConnected: 'Live',
  liveConnecting: 'Connecting…',
  liveDisconnected: 'Offline',
  liveStatus: 'Live updates: {state}',
  logout: 'Sign out',
  loading: 'Loading…',
  error: 'Error: {msg}',
  retry: 'Retry',
  close: 'Close',
  back: 'Back',
  none: 'None',

  // login
  loginTitle: 'Sign in',
  loginUser: 'User name',
  loginPassword: 'Password',
  loginSubmit: 'Sign in',
  loginFailed: 'Sign-in failed: check user name and password.',
  loginNeeded: 'This platform requires authentication.',
  pwTitle: 'Choose a new password',
  pwNeeded: 'Your password is a one-time password: choose your own ({n} characters or more) to continue.',
  pwCurrent: 'Current password',
  pwNew: 'New password',
  pwAgain: 'New password again',
  pwSubmit: 'Change password',
  pwTooShort: 'The new password needs at least {n} characters.',
  pwMismatch: 'The two new passwords differ.',
  pwSame: 'The new password must differ from the current one.',
  pwCurrentWrong: 'The current password is wrong.',

  // map
  mapLabel: 'City map',
  layers: 'Layers',
  layerToggle: 'Show {type}',
  searchLabel: 'Search entity by id or name',
  searchPlaceholder: 'Search id or name…',
  searchNoMatch: 'No entity matches',
  drawArea: 'Draw area',
  drawHint: 'Click on the map to add corners; double-click or press Enter to finish, Escape to cancel.',
  clearArea: 'Clear area',
  inArea: '{n} entities in area',
  entitiesLoaded: '{n} entities',
  legend: 'Legend',
  baseOffline: 'Offline base map (city layers)',
  baseOnline: 'Online tiles',
  districts: 'Districts',
  stateFree: 'Free',
  stateOccupied: 'Occupied',
  stateUnknown: 'Unknown',
  stateGood: 'Good',
  stateFair: 'Fair',
  stateModerate: 'Moderate',
  statePoor: 'Poor',
  stateVeryPoor: 'Very poor',
  stateLow: 'Low fill',
  stateMedium: 'Half full',
  stateHigh: 'Almost full',
  stateFull: 'Full',
  stateOnline: 'Online',
  stateSilent: 'Silent',
  stateFaulty: 'Faulty',
  stateOk: 'OK',
  stateAlarm: 'Alarm',

  // inspector
  inspectorTitle: 'Entity',
  inspectorEmpty: 'Select an entity on the map, in the search or in an alarm.',
  attributes: 'Attributes',
  attrName: 'Attribute',
  attrValue: 'Value',
  attrObserved: 'Observed',
  relationships: 'Relationships',
  devicesBehind: 'Devices',
  history: 'History',
  historyAttr: 'Attribute',
  historyRange: 'Time range',
  historyNoNumeric: 'No numeric attribute to chart.',
  historyEmpty: 'No history in this time range.',
  historyRaw: 'Aggregation not available; showing raw values.',
  historyShort: 'Short history: showing each measurement.',
  range1h: '1 hour',
  range24h: '24 hours',
  range7d: '7 days',
  range30d: '30 days',
  openOnMap: 'Show on map',
  notFound: 'Entity {id} not found.',

  // alarms
  alarmsTitle: 'Active alarms',
  alarmsEmpty: 'No active alarm.',
  severity: 'Severity',
  category: 'Category',
  source: 'Source',
  issued: 'Issued',
  status: 'Status',
  actions: 'Actions',
  acknowledge: 'Acknowledge',
  clear: 'Clear',
  jumpTo: 'Show entity',
  sevCritical: 'Critical',
  sevHigh: 'High',
  sevMedium: 'Medium',
  sevLow: 'Low',
  sevInformational: 'Info',
  alarmAcked: 'Alarm {id} acknowledged',
  alarmCleared: 'Alarm {id} cleared',
  alarmCount: '{n} active',

  // kpi
  kpiTitle: 'U4SSC KPI scorecard',
  kpiDimension: 'Dimension',
  kpiScore: 'Score',
  kpiBand: 'Band',
  kpiName: 'KPI',
  kpiValue: 'Value',
  kpiTarget: 'Target',
  kpiUnit: 'Unit',
  kpiProvenance: 'Provenance',
  kpiUpdated: 'Computed',
  kpiHistory: 'Value history',
  kpiDownload: 'Download report',
  kpiScoredOf: '{n} of {total} data points scored',
  kpiEmpty: 'No KPI score yet.',
  kpiUnavailable: 'KPI service not available.',
  bandAchieved: 'Target achieved',
  bandClose: 'Close to target',
  bandProgress: 'In progress',
  bandFar: 'Far from target',
  bandNone: 'No data',

  // devices
  devicesTitle: 'Device fleet',
  devOnline: 'Online',
  devSilent: 'Silent',
  devFaulty: 'Faulty',
  devTotal: 'Total',
  devLastSeen: 'Last seen',
  devBattery: 'Battery',
  devState: 'State',
  devId: 'Device',
  devRejected: 'Recent rejected payloads',
  devRejectedNone: 'No provisioned device has had a payload rejected.',
  devReason: 'Reason',
  devReceived: 'Received',
  devList: 'Devices',
  rejMalformed: 'Malformed payloads',
  rejUnknown: 'Unknown device',
  rejBadCredentials: 'Bad credentials',
  rejRevoked: 'Revoked device',
  rejForbidden: 'Forbidden',
  rejCount: 'Rejected so far',
  devEmpty: 'No device registered.',
  devFilter: 'Show',
  devAll: 'All',
  ago: '{v} ago',
  never: 'never',
};

export type StringKey = keyof typeof en;
type Catalog = Partial<Record<StringKey, string>>;

const es: Catalog = {
  appTitle: 'Urbis operaciones de ciudad',
  navMap: 'Mapa',
  navAlarms: 'Alarmas',
  navKpi: 'Indicadores KPI',
  navDevices: 'Dispositivos',
  liveConnected: 'En directo',
  liveDisconnected: 'Sin conexión',
  loginTitle: 'Iniciar sesión',
  loginUser: 'Usuario',
  loginPassword: 'Contraseña',
  loginSubmit: 'Entrar',
  logout: 'Cerrar sesión',
  loginFailed: 'No se pudo iniciar sesión: revise usuario y contraseña.',
  pwTitle: 'Elija una contraseña nueva',
  pwNew: 'Contraseña nueva',
  pwAgain: 'Repita la contraseña nueva',
  pwSubmit: 'Cambiar contraseña',
  acknowledge: 'Reconocer',
  clear: 'Borrar',
  alarmsTitle: 'Alarmas activas',
  searchPlaceholder: 'Buscar id o nombre…',
};

const catalogs: Record<string, Catalog> = { en, es };

let lang = 'en';

export function setLanguage(l: string): void {
  const base = l.toLowerCase().split('-')[0];
  lang = base in catalogs ? base : 'en';
}

export function language(): string {
  return lang;
}

export function t(key: StringKey, vars?: Record<string, string | number>): string {
  let s = catalogs[lang]?.[key] ?? en[key];
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}
