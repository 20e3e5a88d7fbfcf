// suite.mjs - the real suite for the browser tests: the fake LLM provider
// (tests/fakes/fake_llm.py) and vapora-supervisor running nats-server, the
// backend (two workers, serving web/), the llm-router and the agents, on
// free loopback ports with a fresh data directory. Plain HTTP helpers for
// the API (a new connection each time, so no idle keep-alive connection of
// ours lingers on a backend worker).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';

export const ADMIN_PW = 'ui-Admin-pw-1';
export const AGENTS_PW = 'ui-Agents-pw-1';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One HTTP request; resolves {status, headers, body (text), json}.
export function request(port, method, p, { token, body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { Connection: 'close', ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (data !== null) { h['Content-Type'] = h['Content-Type'] || 'application/json'; h['Content-Length'] = Buffer.byteLength(data); }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`${method} ${p}: timed out`)));
    if (data !== null) req.write(data);
    req.end();
  });
}

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms${last ? ` (${last.message})` : ''}`);
}

function config(root, dir, p) {
  return `[supervisor]
admin = 127.0.0.1:${p.admin}
data_dir = ${dir}/data
shutdown_timeout = 5

[runtime]
log_level = info

[nats]
url = nats://127.0.0.1:${p.nats}

[backend]
admin_password = ${ADMIN_PW}
agents_password = ${AGENTS_PW}
web_root = ${root}/web
agents_url = http://127.0.0.1:${p.agents}
router_url = http://127.0.0.1:${p.router}

[service:backend]
listen = 127.0.0.1:${p.backend}
workers = 2
; idle keep-alive connections go within 3 s, so that the board's WebSocket
; is soon the only connection the browser holds to a backend worker
request_timeout = 3

[service:llm-router]
listen = 127.0.0.1:${p.router}
workers = 1

[service:agents]
listen = 127.0.0.1:${p.agents}
workers = 1
shutdown_timeout = 5

[program:nats]
command = nats-server -js -a 127.0.0.1 -p ${p.nats} -sd ${dir}/data/nats

[router]
default_max_tokens = 1000

[provider:oai]
kind = openai
base_url = http://127.0.0.1:${p.fake}/s/oai/v1
api_key = sk-oai
models = gpt-a, gpt-b
timeout = 30

[model:gpt-a]
input_usd_per_mtok = 3
output_usd_per_mtok = 15

[model:gpt-b]
input_usd_per_mtok = 0.5
output_usd_per_mtok = 1.5

[routing]
default_model = gpt-a
fallback_chain = oai
retries = 0

[budget:developer]
window = monthly
limit_usd = 0.5

[budget:architect]
window = monthly
limit_usd = 2

[budget:tester]
window = daily
limit_usd = 1

[agents]
router_url = http://127.0.0.1:${p.router}
backend_url = http://127.0.0.1:${p.backend}
backend_password = ${AGENTS_PW}
ack_wait = 5
max_deliveries = 3

[agent:dev-a]
role = developer
model = gpt-a
max_concurrent = 2
system_prompt = You are developer A of a software team.

[agent:dev-b]
role = developer
model = gpt-b
max_concurrent = 2
system_prompt = You are developer B of a software team.

[agent:arch]
role = architect
model = gpt-a
max_concurrent = 1
task_types = architecture, design
system_prompt = You are the architect.

[agent:qa]
role = tester
model = gpt-b
max_concurrent = 2
system_prompt = You are the tester.
`;
}

export class Suite {
  constructor(root, bin, dir) { this.root = root; this.bin = bin; this.dir = dir; this.procs = []; }

  async start() {
    const p = {};
    for (const k of ['admin', 'nats', 'backend', 'router', 'agents', 'fake']) p[k] = await freePort();
    this.ports = p;
    fs.mkdirSync(`${this.dir}/data`, { recursive: true });
    this.fake = this.spawn('fake', 'python3', [`${this.root}/tests/fakes/fake_llm.py`, '--port', String(p.fake), '--parent-pid', String(process.pid), '--ttl', '1800']);
    fs.writeFileSync(`${this.dir}/vapora.conf`, config(this.root, this.dir, p));
    this.sv = this.spawn('supervisor', `${this.bin}/vapora-supervisor`, ['-c', `${this.dir}/vapora.conf`], { detached: true });
    await waitFor('the fake provider', async () => (await request(p.fake, 'GET', '/_fake/health')).status === 200, 15000);
    await waitFor('the backend', async () => (await request(p.backend, 'GET', '/health')).status === 200, 30000);
    this.token = await this.login('admin', ADMIN_PW);
    await waitFor('the agents', async () => {
      const r = await this.api('GET', '/api/v1/agents');
      return r.status === 200 && r.json.items.length && r.json.items.every((a) => a.status !== 'offline');
    }, 30000);
    await waitFor('the router', async () => (await request(p.router, 'GET', '/health')).status === 200, 15000);
  }

  spawn(name, cmd, args, opts = {}) {
    const log = fs.openSync(`${this.dir}/${name}.log`, 'a');
    const c = spawn(cmd, args, { cwd: this.root, stdio: ['ignore', log, log], ...opts });
    this.procs.push(c);
    return c;
  }

  async login(user, pass) {
    const r = await request(this.ports.backend, 'POST', '/api/v1/auth/login', { body: { username: user, password: pass } });
    if (r.status !== 200) throw new Error(`login ${user}: ${r.status} ${r.body}`);
    return r.json.access_token;
  }

  // An API call through the backend (its own routes and the relayed ones).
  api(method, p, body, token = this.token, headers = {}) {
    return request(this.ports.backend, method, p, { token, body, headers });
  }

  // Asserting form: the JSON answer of a call that must answer `want`.
  async must(want, method, p, body, token, headers) {
    const r = await this.api(method, p, body, token, headers);
    if (r.status !== want) throw new Error(`${method} ${p}: ${r.status}, want ${want}: ${r.body.slice(0, 300)}`);
    return r.json;
  }

  fakeConfig(scope, cfg) {
    return request(this.ports.fake, 'POST', `/s/${scope}/_fake/config`, { body: cfg });
  }

  // The supervisor's /status (with its admin token when it has one).
  async status() {
    let token;
    try { token = fs.readFileSync(`${this.dir}/data/admin-token`, 'utf8').trim(); } catch (e) { /* none */ }
    const r = await request(this.ports.admin, 'GET', '/status', { token });
    return r.json;
  }

  // The pids of the backend workers that have an established connection
  // from a client on the backend's port, with the client's port.
  backendHolders() {
    const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( sport = :${this.ports.backend} )`], { encoding: 'utf8' });
    const rows = [];
    for (const line of out.split('\n')) {
      const m = line.match(/:(\d+)\s+users:\(\("vapora-backend",pid=(\d+)/);
      if (m) rows.push({ peer: Number(line.trim().split(/\s+/)[3].split(':').pop()), pid: Number(m[2]) });
    }
    return rows;
  }

  async stop() {
    if (this.sv && this.sv.exitCode === null) {
      try { process.kill(this.sv.pid, 'SIGTERM'); } catch (e) { /* gone */ }
      const end = Date.now() + 15000;
      while (this.sv.exitCode === null && Date.now() < end) await sleep(100);
      try { process.kill(-this.sv.pid, 'SIGKILL'); } catch (e) { /* gone */ }
    }
    for (const c of this.procs) if (c.exitCode === null) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } }
  }
}

export { waitFor, path };
