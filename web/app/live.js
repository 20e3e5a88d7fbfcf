// live.js - the board's live connection: GET /ws (the token in the query
// string: a browser cannot set headers on a WebSocket), reconnected with
// backoff (0.5 s doubling to 15 s, with jitter). Its state is shown to the
// user; after a reconnect the page re-reads what it shows, since events
// sent while away are not replayed.
import { session, api } from './api.js';

export class Live {
  // onEvent(event), onState({state, retryIn}), onReconnect()
  constructor(projectId, { onEvent, onState, onReconnect }) {
    this.projectId = projectId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onReconnect = onReconnect;
    this.delay = 500;
    this.everOpen = false;
    this.closed = false;
    this.connect();
  }

  url() {
    const s = session();
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    let u = `${proto}://${location.host}/ws?token=${encodeURIComponent(s ? s.token : '')}`;
    if (this.projectId) u += `&project_id=${encodeURIComponent(this.projectId)}`;
    return u;
  }

  connect() {
    if (this.closed || !session()) return;
    this.onState({ state: this.everOpen ? 'reconnecting' : 'connecting' });
    let ws;
    try { ws = new WebSocket(this.url()); } catch (e) { this.retry(); return; }
    this.ws = ws;
    ws.onopen = () => {
      const again = this.everOpen;
      this.everOpen = true;
      this.delay = 500;
      this.onState({ state: 'live' });
      if (again) this.onReconnect();
    };
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      this.onEvent(ev);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      // 1008: the token ended; asking anything brings the sign-in back.
      if (e.code === 1008) api('GET', '/api/v1/auth/me').catch(() => {});
      this.retry();
    };
  }

  retry() {
    if (this.closed) return;
    const wait = Math.round(this.delay * (0.8 + Math.random() * 0.4));
    this.delay = Math.min(this.delay * 2, 15000);
    this.onState({ state: 'offline', retryAt: Date.now() + wait });
    this.timer = setTimeout(() => this.connect(), wait);
  }

  // Reconnects at once (the user asked).
  now() {
    clearTimeout(this.timer);
    if (!this.ws) this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) { const w = this.ws; this.ws = null; w.close(); }
  }
}
