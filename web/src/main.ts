/** Dashboard entry: shell, router, live feed wiring; the map (MapLibre) is loaded lazily. */
import './styles.css';
import { t, setLanguage, language, type StringKey } from './strings.ts';
import { h, replace, announce } from './dom.ts';
import { loadConfig } from './config.ts';
import { onAuthNeeded } from './api.ts';
import { showLogin, showPasswordChange, signOut, whoAmI, type Me } from './auth.ts';
import { live, type LiveState } from './live.ts';
import { store } from './store.ts';
import { Inspector } from './inspector.ts';
import { AlarmsView } from './views/alarms.ts';
import { KpiView } from './views/kpi.ts';
import { DevicesView } from './views/devices.ts';
import type { MapView } from './map/map-view.ts';

const params = new URLSearchParams(location.search);
setLanguage(params.get('lang') ?? navigator.language ?? 'en');
document.documentElement.lang = language();
document.title = t('appTitle');

type Route = 'map' | 'alarms' | 'kpi' | 'devices';
const ROUTES: { id: Route; label: StringKey }[] = [
  { id: 'map', label: 'navMap' },
  { id: 'alarms', label: 'navAlarms' },
  { id: 'kpi', label: 'navKpi' },
  { id: 'devices', label: 'navDevices' },
];

const $ = (id: string) => document.getElementById(id)!;
$('skip-link').textContent = t('skipToContent');
$('brand').textContent = t('appTitle');

// ---------- navigation ----------
const alarmBadge = h('span', { class: 'badge alarm-badge', hidden: true, 'aria-live': 'polite' });
const nav = h('ul', {},
  ROUTES.map((r) => h('li', {}, h('a', { href: `#/${r.id}`, 'data-route': r.id }, t(r.label), r.id === 'alarms' ? alarmBadge : null))));
$('main-nav').setAttribute('aria-label', t('mainNav'));
replace($('main-nav'), nav);

// ---------- views ----------
let mapView: MapView | null = null;
let mapLoading: Promise<MapView> | null = null;
const inspector = new Inspector({
  onShowOnMap: (id) => void jumpTo(id, false),
  onClose: () => document.body.classList.remove('inspecting'),
});
$('inspector-slot').append(inspector.el);

const alarms = new AlarmsView({ onJump: (id) => void jumpTo(id, true) });
alarms.onCount = (n) => {
  alarmBadge.hidden = n === 0;
  alarmBadge.textContent = String(n);
  alarmBadge.setAttribute('aria-label', t('alarmCount', { n }));
};
$('view-alarms').append(alarms.el);
const kpi = new KpiView();
$('view-kpi').append(kpi.el);
const devices = new DevicesView({ onOpen: (id) => void jumpTo(id, true) });
$('view-devices').append(devices.el);

/** runtime config (tile URL, initial view); the map waits for it, data loading does not */
const configReady = loadConfig();

function ensureMap(): Promise<MapView> {
  mapLoading ??= Promise.all([import('./map/map-view.ts'), configReady]).then(async ([m]) => {
    mapView = new m.MapView($('map'), $('map-sidebar'), { onSelect: (id) => void select(id) });
    await mapView.whenReady();
    return mapView;
  });
  return mapLoading;
}

async function select(id: string): Promise<void> {
  document.body.classList.add('inspecting');
  void mapView?.focus(id, false);
  await inspector.open(id);
  mapView?.resize();
}

async function jumpTo(id: string, openInspector: boolean): Promise<void> {
  if (currentRoute() !== 'map') location.hash = '#/map';
  const mv = await ensureMap();
  if (openInspector && inspector.currentId !== id) void select(id);
  document.body.classList.add('inspecting');
  mv.resize();
  await mv.focus(id, true);
}

function currentRoute(): Route {
  const r = location.hash.replace(/^#\/?/, '').split('/')[0] as Route;
  return ROUTES.some((x) => x.id === r) ? r : 'map';
}

const loaded = new Set<Route>();
function route(): void {
  const r = currentRoute();
  for (const x of ROUTES) {
    $(`view-${x.id}`).hidden = x.id !== r;
    const a = nav.querySelector(`a[data-route="${x.id}"]`)!;
    if (x.id === r) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.dataset.view = r;
  if (r === 'map') void ensureMap().then((m) => m.resize());
  if (!loaded.has(r)) {
    loaded.add(r);
    if (r === 'kpi') void kpi.load();
    if (r === 'devices') void devices.load();
  }
  const heading = $(`view-${r}`).querySelector('h1');
  if (r !== 'map' && heading instanceof HTMLElement) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  announce(t(ROUTES.find((x) => x.id === r)!.label));
}
window.addEventListener('hashchange', route);

// ---------- live status ----------
const liveEl = $('live-status');
const setLive = (s: LiveState) => {
  const label = s === 'open' ? t('liveConnected') : s === 'connecting' ? t('liveConnecting') : t('liveDisconnected');
  liveEl.className = `live live-${s}`;
  replace(liveEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), label);
  liveEl.setAttribute('aria-label', t('liveStatus', { state: label }));
};
live.onState(setLive);
setLive('connecting');

live.onChange((changes) => {
  store.apply(changes);
  alarms.live(changes);
  devices.live(changes);
  if (inspector.currentId) for (const c of changes) if (c.id === inspector.currentId) inspector.liveUpdate(c.id);
});
live.onResync(() => {
  void store.load();
  void alarms.load();
  if (loaded.has('devices')) void devices.load();
});

// ---------- session ----------
/** top bar: who is signed in + sign out; "sign in" for anonymous readers (URBIS_PUBLIC_READ) */
function showUser(me: Me | null): void {
  const slot = $('user-slot');
  if (me === null) {
    replace(slot, h('button', { type: 'button', class: 'btn small secondary', id: 'sign-in', onclick: () => void showLogin().then(() => location.reload()) }, t('loginSubmit')));
  } else if (!me.auth) replace(slot);
  else {
    replace(slot,
      h('span', { class: 'user-name', id: 'user-name' }, me.name),
      h('button', { type: 'button', class: 'btn small secondary', id: 'sign-out', onclick: () => void signOut() }, t('logout')));
  }
}

async function refreshUser(): Promise<void> {
  try {
    showUser(await whoAmI());
  } catch {
    /* the platform without the trust module: nothing to show */
  }
}

// an API answered 401 (no session) or 403 (maybe a one-time password to change first)
onAuthNeeded(async (status) => {
  if (status === 401) {
    await showLogin();
  } else {
    const me = await whoAmI().catch(() => null);
    if (!me?.mustChangePassword) return false;
    await showPasswordChange();
  }
  void refreshUser();
  live.restart();
  return true;
});

// ---------- start ----------
async function start(): Promise<void> {
  route();
  void refreshUser();
  live.start();
  const mapP = currentRoute() === 'map' ? ensureMap() : null;
  const dataP = store.load();
  void alarms.load();
  await dataP;
  performance.mark('urbis:data-loaded');
  if (mapP) {
    const mv = await mapP;
    mv.map.once('idle', () => performance.mark('urbis:map-ready'));
    mv.map.triggerRepaint();
  }
  document.body.dataset.ready = 'true';
}
void start();

/** debugging / test hook (read-only use) */
(window as unknown as { __urbis: unknown }).__urbis = {
  store,
  live,
  get map() {
    return mapView?.map;
  },
};
