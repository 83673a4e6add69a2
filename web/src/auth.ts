/**
 * Sign-in against the trust layer (src/trust/http.ts, docs/security.md):
 *   POST /auth/v1/login {username, password}   sets the HttpOnly session cookie; answers
 *                                              { name, roles, mustChangePassword }
 *   POST /auth/v1/password {currentPassword, newPassword}   204; required first when the user
 *                                              has a one-time password (every other API answers
 *                                              403 until then)
 *   GET  /auth/v1/me                           who is signed in (401 when anonymous; auth:false
 *                                              when the platform runs with URBIS_AUTH=off)
 *   POST /auth/v1/logout                       ends the session, clears the cookie
 * The browser keeps and sends the cookie itself (same origin); no token is ever visible to scripts.
 */
import { h } from './dom.ts';
import { t } from './strings.ts';

export const AUTH = '/auth/v1';
export const MIN_PASSWORD = 12;

export interface Me {
  kind: string;
  id?: string;
  name: string;
  roles?: { role: string; tenant: string }[];
  mustChangePassword: boolean;
  /** false: the platform runs without authentication */
  auth: boolean;
}

/** null = anonymous (no session); auth off answers { auth: false } */
export async function whoAmI(): Promise<Me | null> {
  const res = await fetch(`${AUTH}/me`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
  if (res.status === 401) return null;
  if (!res.ok) throw new Error(`${AUTH}/me: ${res.status}`);
  const j = (await res.json()) as Partial<Me>;
  return { kind: String(j.kind ?? 'user'), id: j.id, name: String(j.name ?? j.id ?? ''), roles: j.roles, mustChangePassword: Boolean(j.mustChangePassword), auth: j.auth !== false };
}

export type SignInResult = { ok: true; mustChangePassword: boolean; name: string } | { ok: false; message: string };

async function problemText(res: Response, fallback: string): Promise<string> {
  try {
    const p = (await res.json()) as { detail?: string; title?: string };
    return p.detail ?? p.title ?? fallback;
  } catch {
    return fallback;
  }
}

export async function signIn(username: string, password: string): Promise<SignInResult> {
  const res = await fetch(`${AUTH}/login`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) return { ok: false, message: res.status === 401 ? t('loginFailed') : await problemText(res, `${res.status}`) };
  const j = (await res.json()) as { name?: string; mustChangePassword?: boolean };
  return { ok: true, mustChangePassword: Boolean(j.mustChangePassword), name: String(j.name ?? username) };
}

export async function changePassword(currentPassword: string, newPassword: string): Promise<{ ok: true } | { ok: false; message: string }> {
  const res = await fetch(`${AUTH}/password`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ currentPassword, newPassword }),
  });
  if (res.ok) return { ok: true };
  return { ok: false, message: res.status === 403 ? t('pwCurrentWrong') : await problemText(res, `${res.status}`) };
}

export async function signOut(): Promise<void> {
  try {
    await fetch(`${AUTH}/logout`, { method: 'POST', credentials: 'same-origin' });
  } finally {
    location.reload();
  }
}

// ---------------------------------------------------------------- dialogs

function field(id: string, label: string, input: HTMLInputElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

/**
 * Modal sign-in; when the account has a one-time password, the same dialog then asks for a new
 * one. Resolves once the session may use the APIs. The dialog cannot be dismissed.
 */
export function showLogin(): Promise<Me> {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'login', 'aria-labelledby': 'login-h', 'data-step': 'login' });
    dlg.addEventListener('cancel', (e) => e.preventDefault()); // sign-in is required
    const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
    const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const err = h('p', { class: 'error', role: 'alert', id: 'login-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn' }, t('loginSubmit'));
    const form = h('form', { class: 'login-form', 'aria-describedby': 'login-error' },
      h('h2', { id: 'login-h' }, t('loginTitle')),
      h('p', { class: 'muted' }, t('loginNeeded')),
      field('login-user', t('loginUser'), user),
      field('login-pass', t('loginPassword'), pass),
      err,
      submit);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.hidden = true;
      submit.disabled = true;
      const r = await signIn(user.value, pass.value).catch((x: Error) => ({ ok: false as const, message: x.message }));
      submit.disabled = false;
      if (!r.ok) {
        err.textContent = r.message;
        err.hidden = false;
        pass.select();
        return;
      }
      const done = (): void => {
        dlg.close();
        dlg.remove();
        resolve({ kind: 'user', name: r.name, mustChangePassword: false, auth: true });
      };
      if (r.mustChangePassword) passwordStep(dlg, pass.value, done);
      else done();
    });
    dlg.append(form);
    document.body.append(dlg);
    dlg.showModal();
    user.focus();
  });
}

/** a session whose password must be changed first (e.g. after a reload): ask for the new one only */
export function showPasswordChange(): Promise<void> {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'login', 'aria-labelledby': 'pw-h' });
    dlg.addEventListener('cancel', (e) => e.preventDefault());
    document.body.append(dlg);
    dlg.showModal();
    passwordStep(dlg, null, () => {
      dlg.close();
      dlg.remove();
      resolve();
    });
  });
}

function passwordStep(dlg: HTMLDialogElement, current: string | null, done: () => void): void {
  dlg.dataset.step = 'password';
  const cur = h('input', { id: 'pw-current', name: 'current-password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'pw-new', name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: MIN_PASSWORD });
  const again = h('input', { id: 'pw-again', name: 'new-password-again', type: 'password', autocomplete: 'new-password', required: true, minlength: MIN_PASSWORD });
  const err = h('p', { class: 'error', role: 'alert', id: 'pw-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn' }, t('pwSubmit'));
  const form = h('form', { class: 'login-form', 'aria-describedby': 'pw-error' },
    h('h2', { id: 'pw-h' }, t('pwTitle')),
    h('p', { class: 'muted' }, t('pwNeeded', { n: MIN_PASSWORD })),
    current === null ? field('pw-current', t('pwCurrent'), cur) : null,
    field('pw-new', t('pwNew'), next),
    field('pw-again', t('pwAgain'), again),
    err,
    submit);
  dlg.setAttribute('aria-labelledby', 'pw-h');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.hidden = true;
    const fail = (m: string, el: HTMLInputElement) => {
      err.textContent = m;
      err.hidden = false;
      el.select();
    };
    if (next.value.length < MIN_PASSWORD) return fail(t('pwTooShort', { n: MIN_PASSWORD }), next);
    if (next.value !== again.value) return fail(t('pwMismatch'), again);
    if (next.value === (current ?? cur.value)) return fail(t('pwSame'), next);
    submit.disabled = true;
    const r = await changePassword(current ?? cur.value, next.value).catch((x: Error) => ({ ok: false as const, message: x.message }));
    submit.disabled = false;
    if (r.ok) done();
    else fail(r.message, current === null ? cur : next);
  });
  dlg.replaceChildren(form);
  (current === null ? cur : next).focus();
}
