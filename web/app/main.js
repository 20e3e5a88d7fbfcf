// main.js - the web board's shell: sign-in, the navigation, the pages by
// their #/ address, the live connection's state and the messages (toasts).
import { html, render, useState, useEffect } from './lib.js';
import { on, session, signIn, endSession, isOwner, canWrite } from './api.js';
import { Board } from './board.js';
import { Projects, Agents, Costs, Workers } from './pages.js';

function useRoute() {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const f = () => setHash(location.hash || '#/');
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return hash.replace(/^#/, '').split('/').filter(Boolean);
}

function SignIn() {
  const [user, setUser] = useState('');
  const [pass, setPass] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setErr('');
    try { await signIn(user.trim(), pass); } catch (x) { setErr(x.message); setBusy(false); }
  };
  return html`<main class="signin">
    <form class="signin-card" onSubmit=${submit} aria-labelledby="signin-title">
      <div class="brand brand-lg"><span class="logo" aria-hidden="true"></span>VAPORA</div>
      <h1 id="signin-title">Sign in to your board</h1>
      <p class="muted">Projects, tasks and the agents that work on them.</p>
      <label>User name<input name="username" autocomplete="username" required value=${user} onInput=${(e) => setUser(e.target.value)} /></label>
      <label>Password<input name="password" type="password" autocomplete="current-password" required value=${pass} onInput=${(e) => setPass(e.target.value)} /></label>
      ${err && html`<p class="form-error" role="alert">${err}</p>`}
      <button class="btn primary wide" type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
  </main>`;
}

const LIVE_TEXT = {
  live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline',
};

function LiveState() {
  const [st, setSt] = useState(null);
  const [, tick] = useState(0);
  useEffect(() => on('live', setSt), []);
  useEffect(() => {
    if (!st || st.state !== 'offline') return undefined;
    const t = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(t);
  }, [st]);
  if (!st) return null;
  const secs = st.retryAt ? Math.max(0, Math.ceil((st.retryAt - Date.now()) / 1000)) : 0;
  const text = st.state === 'offline'
    ? `Disconnected: retrying in ${secs} s` : LIVE_TEXT[st.state];
  return html`<div class=${`live live-${st.state}`} role="status" aria-live="polite" data-live=${st.state}>
    <span class="dot" aria-hidden="true"></span>${text}
    ${st.state === 'offline' && st.retry && html`<button class="btn link" onClick=${st.retry}>Retry now</button>`}
  </div>`;
}

function Toasts() {
  const [list, setList] = useState([]);
  useEffect(() => on('toast', (t) => {
    setList((l) => [...l.slice(-3), t]);
    setTimeout(() => setList((l) => l.filter((x) => x !== t)), t.kind === 'error' ? 9000 : 6000);
  }), []);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${list.map((t) => html`<div key=${t.id} class=${`toast toast-${t.kind}`}>
      <span>${t.text}</span>
      <button class="btn icon" aria-label="Dismiss this message" onClick=${() => setList((l) => l.filter((x) => x !== t))}>×</button>
    </div>`)}
  </div>`;
}

function Nav({ route }) {
  const s = session();
  const here = route[0] || 'projects';
  const link = (href, name, key) => html`<a href=${href} class=${here === key ? 'active' : ''} aria-current=${here === key ? 'page' : undefined}>${name}</a>`;
  return html`<header class="topbar">
    <a class="brand" href="#/" aria-label="VAPORA: all projects"><span class="logo" aria-hidden="true"></span>VAPORA</a>
    <nav aria-label="Main">
      ${link('#/projects', 'Projects', here === 'p' ? 'p' : 'projects')}
      ${link('#/agents', 'Agents', 'agents')}
      ${link('#/costs', 'Costs', 'costs')}
      ${isOwner() && link('#/workers', 'Workers', 'workers')}
    </nav>
    <div class="spacer"></div>
    <${LiveState} />
    <div class="who">
      <span class="avatar" aria-hidden="true">${s.user.username.slice(0, 1).toUpperCase()}</span>
      <span><strong>${s.user.username}</strong> <span class=${`role-pill role-${s.user.role}`}>${s.user.role}</span></span>
      ${!canWrite() && html`<span class="muted small">read only</span>`}
    </div>
    <button class="btn ghost" onClick=${() => { endSession(); location.hash = '#/'; }}>Sign out</button>
  </header>`;
}

function App() {
  const [s, setS] = useState(session());
  const route = useRoute();
  useEffect(() => on('session', setS), []);
  useEffect(() => { document.body.classList.toggle('signed-in', !!s); }, [s]);
  if (!s) return html`<${SignIn} /><${Toasts} />`;
  let page;
  switch (route[0]) {
    case 'p': page = html`<${Board} key=${route[1]} projectId=${route[1]} taskId=${route[2] === 't' ? route[3] : null} />`; break;
    case 'agents': page = html`<${Agents} />`; break;
    case 'costs': page = html`<${Costs} />`; break;
    case 'workers': page = html`<${Workers} />`; break;
    default: page = html`<${Projects} />`;
  }
  return html`<${Nav} route=${route} /><main id="main" class="page">${page}</main><${Toasts} />`;
}

const root = document.getElementById('app');
root.textContent = ''; // the boot message
render(html`<${App} />`, root);
