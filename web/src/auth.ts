/**
 * Sign-in when the platform requires authentication: OAuth 2 password grant against the trust
 * layer's token endpoint; the access token is kept in sessionStorage and sent as a bearer token.
 */
import { setToken, getToken } from './api.ts';
import { h } from './dom.ts';
import { t } from './strings.ts';

/** token endpoint of the trust layer */
export const TOKEN_URL = '/auth/v1/token';
export const CLIENT_ID = 'urbis-dashboard';

export async function signIn(username: string, password: string): Promise<boolean> {
  const body = new URLSearchParams({ grant_type: 'password', username, password, client_id: CLIENT_ID });
  const res = await fetch(TOKEN_URL, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body });
  if (!res.ok) return false;
  const j = (await res.json()) as { access_token?: string; token?: string };
  const tok = j.access_token ?? j.token;
  if (!tok) return false;
  setToken(tok);
  return true;
}

export function signOut(): void {
  setToken(null);
  location.reload();
}

export function signedIn(): boolean {
  return getToken() !== null;
}

/** modal sign-in dialog; resolves once signed in */
export function showLogin(onSignedIn?: () => void): Promise<void> {
  return new Promise((resolve) => {
    const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
    const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const err = h('p', { class: 'error', role: 'alert', hidden: true }, t('loginFailed'));
    const form = h('form', { method: 'dialog', class: 'login-form' },
      h('h2', { id: 'login-h' }, t('loginTitle')),
      h('p', { class: 'muted' }, t('loginNeeded')),
      h('div', { class: 'field' }, h('label', { for: 'login-user' }, t('loginUser')), user),
      h('div', { class: 'field' }, h('label', { for: 'login-pass' }, t('loginPassword')), pass),
      err,
      h('button', { type: 'submit', class: 'btn' }, t('loginSubmit')));
    const dlg = h('dialog', { class: 'login', 'aria-labelledby': 'login-h' }, form);
    dlg.addEventListener('cancel', (e) => e.preventDefault()); // sign-in is required
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.hidden = true;
      if (await signIn(user.value, pass.value).catch(() => false)) {
        dlg.close();
        dlg.remove();
        onSignedIn?.();
        resolve();
      } else {
        err.hidden = false;
        pass.select();
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    user.focus();
  });
}
