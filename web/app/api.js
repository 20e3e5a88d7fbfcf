// api.js - the session (token in sessionStorage), the API client and the
// small event bus the pages share (toasts, the session ending).
const KEY = 'vapora.session';
const listeners = new Map();

export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  return () => listeners.get(name).delete(fn);
}
export function emit(name, arg) {
  for (const fn of listeners.get(name) || []) fn(arg);
}
export function toast(text, kind = 'info') {
  emit('toast', { text, kind, id: Math.random() });
}

function readSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (s && s.token && s.expires > Date.now()) return s;
  } catch (e) { /* a broken entry is no session */ }
  return null;
}

let current = readSession();
let expiryTimer = null;

function armExpiry() {
  clearTimeout(expiryTimer);
  if (!current) return;
  const left = current.expires - Date.now();
  expiryTimer = setTimeout(() => endSession('Your session expired. Sign in again.'),
    Math.max(0, Math.min(left, 2 ** 31 - 1)));
}
armExpiry();

export function session() { return current; }
export function canWrite() { return !!current && current.user.role !== 'viewer'; }
export function isOwner() { return !!current && current.user.role === 'owner'; }

export async function signIn(username, password) {
  const r = await fetch('/api/v1/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = body.error || {};
    if (r.status === 429) {
      const after = r.headers.get('Retry-After');
      throw new Error(`Too many attempts: try again in ${after || 'a few'} seconds.`);
    }
    throw new Error(e.code === 'invalid_credentials'
      ? 'That user name and password do not match.' : (e.message || `Sign-in failed (${r.status}).`));
  }
  current = {
    token: body.access_token,
    user: body.user,
    expires: Date.now() + (body.expires_in || 3600) * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(current));
  armExpiry();
  emit('session', current);
  return current;
}

export function endSession(why) {
  current = null;
  clearTimeout(expiryTimer);
  sessionStorage.removeItem(KEY);
  emit('session', null);
  if (why) toast(why, 'warn');
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One request to the API. opts: body (JSON), ifMatch (a task's version),
// signal. Resolves to the parsed body (null when empty); rejects with an
// ApiError. A 401 ends the session: the sign-in comes back.
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (current) headers.Authorization = `Bearer ${current.token}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.ifMatch !== undefined) headers['If-Match'] = `"${opts.ifMatch}"`;
  let r;
  try {
    r = await fetch(path, {
      method, headers, signal: opts.signal,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (r.status === 401 && current) {
    endSession('Your session ended. Sign in again.');
  }
  if (!r.ok) {
    const e = (body && body.error) || {};
    throw new ApiError(r.status, e.code || 'error', e.message || `${method} ${path}: ${r.status}`);
  }
  return body;
}

// A stream of Server-Sent Events (a run's live output) read with fetch, so
// the token goes in a header, not in the URL. onEvent(type, data) per event;
// resolves when the stream ends. Abort with the signal.
export async function sse(path, onEvent, signal) {
  const r = await fetch(path, {
    headers: { Accept: 'text/event-stream', Authorization: `Bearer ${current.token}` },
    signal,
  });
  if (!r.ok || !r.body) throw new ApiError(r.status, 'stream', `stream: ${r.status}`);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
      let type = 'message'; const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(type, data.join('\n'));
    }
  }
}
