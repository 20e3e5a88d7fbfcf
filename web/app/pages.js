// pages.js - the pages beside the board: projects, agents (with their
// learning profiles), costs (budgets and usage over time) and workers (the
// supervisor's view, owners only).
import { html, useState, useEffect, useRef, fmtUsd, fmtMs, fmtBytes, fmtAgo, pct } from './lib.js';
import { api, toast, canWrite, isOwner } from './api.js';
import { Dialog } from './task.js';
import { HBars, StackedBars, Legend, Meter } from './charts.js';

// Calls fn now and every ms while the page is shown.
function usePoll(fn, ms, deps = []) {
  useEffect(() => {
    let stop = false; let t;
    const tick = async () => { await fn(); if (!stop) t = setTimeout(tick, ms); };
    tick();
    return () => { stop = true; clearTimeout(t); };
  }, deps);
}

function Unavailable({ what, err }) {
  return html`<div class="notice" role="alert"><strong>${what} cannot be read right now.</strong> <span class="muted">${err.message}</span></div>`;
}

// ---- projects ----

function DeleteProject({ p, onDone }) {
  const [cascade, setCascade] = useState(false);
  const [typed, setTyped] = useState('');
  const [err, setErr] = useState('');
  const go = async (e) => {
    e.preventDefault();
    try {
      await api('DELETE', `/api/v1/projects/${p.id}${cascade ? '?cascade=true' : ''}`);
      toast(`Project “${p.name}” deleted.`, 'ok');
      onDone(true);
    } catch (x) {
      if (x.code === 'project_has_tasks') { setCascade(true); setErr(''); } else setErr(x.message);
    }
  };
  return html`<${Dialog} title=${`Delete project ${p.name}`} onClose=${() => onDone(false)}>
    <form class="form" onSubmit=${go}>
      <h2>Delete “${p.name}”?</h2>
      ${!cascade ? html`<p>The project goes away for everyone. This cannot be undone.</p>`
        : html`<p class="warn-text" role="alert"><strong>This project still has tasks.</strong> Deleting it deletes every one of its tasks too, and stops the agents working on them.</p>
          <label>Type the project's name to delete it with its tasks<input value=${typed} onInput=${(e) => setTyped(e.target.value)} autofocus /></label>`}
      ${err && html`<p class="form-error" role="alert">${err}</p>`}
      <div class="actions"><button type="button" class="btn ghost" onClick=${() => onDone(false)}>Cancel</button>
        <button class="btn danger" disabled=${cascade && typed !== p.name}>${cascade ? 'Delete project and tasks' : 'Delete project'}</button></div>
    </form>
  <//>`;
}

function ProjectCard({ p, writable, onChanged, onDelete }) {
  const [edit, setEdit] = useState(false);
  const [name, setName] = useState(p.name);
  const save = async (e) => {
    e.preventDefault();
    try { onChanged(await api('PATCH', `/api/v1/projects/${p.id}`, { body: { name } })); setEdit(false); toast(`Renamed to “${name}”.`, 'ok'); } catch (x) { toast(`Not renamed: ${x.message}`, 'error'); }
  };
  return html`<li class="project-card">
    ${edit ? html`<form class="rename" onSubmit=${save}><input value=${name} onInput=${(e) => setName(e.target.value)} aria-label=${`New name for ${p.name}`} autofocus required maxlength="200" />
        <button class="btn mini primary">Save</button><button type="button" class="btn mini ghost" onClick=${() => setEdit(false)}>Cancel</button></form>`
      : html`<a class="project-link" href=${`#/p/${p.id}`}><span class="project-icon" aria-hidden="true">${p.name.slice(0, 1).toUpperCase()}</span>
        <span><strong>${p.name}</strong><span class="muted small block">${p.description || 'No description'}</span></span></a>`}
    <div class="project-meta"><span class="muted small">created ${fmtAgo(p.created_at)}</span><span class="spacer"></span>
      ${writable && !edit && html`<button class="btn mini ghost" onClick=${() => { setName(p.name); setEdit(true); }} aria-label=${`Rename ${p.name}`}>Rename</button>
        <button class="btn mini ghost danger" onClick=${onDelete} aria-label=${`Delete ${p.name}`}>Delete</button>`}
    </div>
  </li>`;
}

export function Projects() {
  const [list, setList] = useState(null);
  const [err, setErr] = useState(null);
  const [v, setV] = useState({ name: '', description: '' });
  const [del, setDel] = useState(null);
  const writable = canWrite();
  const load = async () => {
    try {
      const all = []; let cursor = '';
      for (let i = 0; i < 20; i++) {
        const r = await api('GET', `/api/v1/projects?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        all.push(...r.items);
        if (!r.next_cursor) break;
        cursor = r.next_cursor;
      }
      setList(all);
    } catch (e) { setErr(e); }
  };
  useEffect(() => { load(); }, []);
  const create = async (e) => {
    e.preventDefault();
    try {
      const p = await api('POST', '/api/v1/projects', { body: v });
      setList([...(list || []), p]); setV({ name: '', description: '' });
      toast(`Project “${p.name}” created.`, 'ok');
    } catch (x) { toast(`Not created: ${x.message}`, 'error'); }
  };
  return html`<div class="narrow">
    <div class="page-head"><h1>Projects</h1><p class="muted">Each project has its board: tasks move from To do to Done, with agents doing the work.</p></div>
    ${writable && html`<form class="card-form" onSubmit=${create} aria-label="New project">
      <input placeholder="New project name" aria-label="New project name" required maxlength="200" value=${v.name} onInput=${(e) => setV({ ...v, name: e.target.value })} />
      <input placeholder="Description (optional)" aria-label="New project description" maxlength="10000" value=${v.description} onInput=${(e) => setV({ ...v, description: e.target.value })} />
      <button class="btn primary">Create project</button>
    </form>`}
    ${err && html`<${Unavailable} what="The projects" err=${err} />`}
    ${!list && !err && html`<div class="loading">Loading…</div>`}
    ${list && list.length === 0 && html`<div class="empty-state"><h2>No project yet</h2><p class="muted">${writable ? 'Create the first one above.' : 'A member will create one.'}</p></div>`}
    ${list && html`<ul class="projects">${list.map((p) => html`<${ProjectCard} key=${p.id} p=${p} writable=${writable}
        onChanged=${(n) => setList(list.map((x) => (x.id === n.id ? n : x)))} onDelete=${() => setDel(p)} />`)}</ul>`}
    ${del && html`<${DeleteProject} p=${del} onDone=${(gone) => { if (gone) setList(list.filter((x) => x.id !== del.id)); setDel(null); }} />`}
  </div>`;
}

// ---- agents ----

function AgentCard({ a, profile }) {
  const load = a.max_concurrent ? a.in_flight / a.max_concurrent : 0;
  const rows = (profile || []).slice().sort((x, y) => y.runs - x.runs).slice(0, 6).map((p) => ({
    label: p.task_type, value: p.expertise, extra: p.confidence,
    note: `${p.runs} run${p.runs === 1 ? '' : 's'}`,
  }));
  return html`<article class="agent-card" aria-labelledby=${`ag-${a.name}`}>
    <header><span class=${`status-dot st-${a.status}`} aria-hidden="true"></span>
      <h2 id=${`ag-${a.name}`}>${a.name}</h2><span class=${`state-pill st-${a.status}`}>${a.status}</span></header>
    <p class="muted small">${a.role} · ${a.model}</p>
    <dl class="stats">
      <div><dt>Load</dt><dd>${a.in_flight}/${a.max_concurrent}</dd></div>
      <div><dt>Success</dt><dd>${a.runs_total ? pct(a.success_rate) : '–'}</dd></div>
      <div><dt>Runs</dt><dd>${a.runs_total}</dd></div>
      <div><dt>Latency</dt><dd>${a.runs_total ? fmtMs(a.avg_latency_ms) : '–'}</dd></div>
    </dl>
    <div class="loadbar" role="meter" aria-label=${`${a.name} load`} aria-valuemin="0" aria-valuemax=${a.max_concurrent} aria-valuenow=${a.in_flight}><div style=${`width:${Math.min(1, load) * 100}%`}></div></div>
    <h3 class="small-h">Learning profile</h3>
    ${rows.length ? html`<${HBars} rows=${rows} label=${`${a.name}: expertise per task type (bar) and confidence (shade)`} />
      <p class="legend-line small muted"><span class="sw sw-value"></span>expertise <span class="sw sw-extra"></span>confidence</p>`
      : html`<p class="muted small">No run yet: claims ${(a.task_types || []).slice(0, 4).join(', ')}${(a.task_types || []).length > 4 ? '…' : ''}.</p>`}
  </article>`;
}

export function Agents() {
  const [agents, setAgents] = useState(null);
  const [profiles, setProfiles] = useState({});
  const [err, setErr] = useState(null);
  usePoll(async () => {
    try {
      const r = await api('GET', '/api/v1/agents');
      setAgents(r.items); setErr(null);
      const ps = {};
      await Promise.all(r.items.map((a) => api('GET', `/api/v1/agents/${encodeURIComponent(a.name)}`)
        .then((d) => { ps[a.name] = d.profile || []; }).catch(() => {})));
      setProfiles(ps);
    } catch (e) { setErr(e); }
  }, 5000);
  const busy = (agents || []).filter((a) => a.in_flight > 0).length;
  return html`<div>
    <div class="page-head"><h1>Agents</h1><p class="muted">Who does what, how loaded each agent is, and what it has learned to be good at.</p></div>
    ${err && html`<${Unavailable} what="The agents" err=${err} />`}
    ${agents && html`<div class="summary"><div><strong>${agents.length}</strong><span>agents</span></div><div><strong>${busy}</strong><span>working now</span></div>
      <div><strong>${agents.reduce((s, a) => s + a.runs_total, 0)}</strong><span>runs in all</span></div></div>
      <div class="agent-grid">${agents.map((a) => html`<${AgentCard} key=${a.name} a=${a} profile=${profiles[a.name]} />`)}</div>`}
    ${!agents && !err && html`<div class="loading">Loading…</div>`}
  </div>`;
}

// ---- costs ----

const RANGES = { '1h': [3600, 12, (d) => d.toTimeString().slice(0, 5)], '24h': [86400, 12, (d) => d.toTimeString().slice(0, 5)], '7d': [7 * 86400, 14, (d) => d.toDateString().slice(4, 10)] };

// Usage per bucket: the API totals everything since a time, so each bucket
// is the difference of two totals.
async function usageSeries(groupBy, range) {
  const [span, n, label] = RANGES[range];
  const now = Math.floor(Date.now() / 1000);
  const points = Array.from({ length: n }, (_, i) => now - span + Math.round((span * i) / n));
  const totals = await Promise.all(points.map((t) => api('GET', `/api/v1/usage?group_by=${groupBy}&since=${t}`)));
  totals.push([]); // the last bucket runs to now
  const keyOf = (row) => row[groupBy] ?? row.key ?? row.name ?? '?';
  const asMap = (r) => {
    const m = {};
    for (const row of (Array.isArray(r) ? r : r.items || r.groups || [])) m[keyOf(row)] = row;
    return m;
  };
  const maps = totals.map(asMap);
  const names = Object.keys(maps[0]).sort();
  const buckets = [];
  for (let i = 0; i < n; i++) {
    const parts = {};
    for (const k of names) {
      const a = maps[i][k] || {}; const b = maps[i + 1][k] || {};
      parts[k] = { cost: Math.max(0, (a.cost_usd || 0) - (b.cost_usd || 0)), requests: Math.max(0, (a.requests || 0) - (b.requests || 0)) };
    }
    buckets.push({ label: label(new Date(points[i] * 1000)), parts });
  }
  return { names, buckets, totals: maps[0] };
}

export function Costs() {
  const [budgets, setBudgets] = useState(null);
  const [usage, setUsage] = useState(null);
  const [err, setErr] = useState(null);
  const [groupBy, setGroupBy] = useState('role');
  const [range, setRange] = useState('24h');
  const [metric, setMetric] = useState('cost');
  usePoll(async () => {
    try {
      const [b, u] = await Promise.all([api('GET', '/api/v1/budgets'), usageSeries(groupBy, range)]);
      setBudgets(Array.isArray(b) ? b : b.items || []); setUsage(u); setErr(null);
    } catch (e) { setErr(e); }
  }, 10000, [groupBy, range]);
  const fmt = metric === 'cost' ? fmtUsd : (v) => String(Math.round(v * 10) / 10);
  const buckets = usage ? usage.buckets.map((b) => ({ label: b.label, parts: Object.fromEntries(Object.entries(b.parts).map(([k, v]) => [k, v[metric === 'cost' ? 'cost' : 'requests']])) })) : [];
  const pick = (label, value, options, set) => html`<div class="seg" role="group" aria-label=${label}>${options.map(([v, t]) => html`<button class=${`seg-btn${value === v ? ' on' : ''}`} aria-pressed=${value === v ? 'true' : 'false'} onClick=${() => set(v)}>${t}</button>`)}</div>`;
  return html`<div>
    <div class="page-head"><h1>Costs</h1><p class="muted">What each role may spend, what it spent, and where the money went.</p></div>
    ${err && html`<${Unavailable} what="The router's reports" err=${err} />`}
    <section class="panel" aria-labelledby="budgets-h">
      <h2 id="budgets-h">Budgets</h2>
      ${budgets && budgets.length === 0 && html`<p class="muted">No budget is configured.</p>`}
      ${budgets && budgets.length > 0 && html`<table class="table"><thead><tr><th scope="col">Role</th><th scope="col">Window</th><th scope="col" class="wide">Spent of limit</th><th scope="col" class="num">Spent</th><th scope="col" class="num">Reserved</th><th scope="col" class="num">Limit</th><th scope="col">State</th></tr></thead>
        <tbody>${budgets.map((b) => html`<tr key=${b.role}><th scope="row">${b.role}</th><td>${b.window}</td>
          <td><${Meter} used=${b.spent_usd} reserved=${b.reserved_usd} limit=${b.limit_usd} label=${`${b.role}: ${fmtUsd(b.spent_usd)} spent of ${fmtUsd(b.limit_usd)}`} /></td>
          <td class="num">${fmtUsd(b.spent_usd)}</td><td class="num">${fmtUsd(b.reserved_usd)}</td><td class="num">${fmtUsd(b.limit_usd)}</td>
          <td><span class=${`state-pill st-${b.state}`}>${b.state}</span></td></tr>`)}</tbody></table>`}
    </section>
    <section class="panel" aria-labelledby="usage-h">
      <div class="section-head"><h2 id="usage-h">Usage over time</h2><span class="spacer"></span>
        ${pick('Group by', groupBy, [['role', 'Role'], ['provider', 'Provider'], ['model', 'Model']], setGroupBy)}
        ${pick('Measure', metric, [['cost', 'Cost'], ['requests', 'Requests']], setMetric)}
        ${pick('Range', range, [['1h', '1 h'], ['24h', '24 h'], ['7d', '7 d']], setRange)}</div>
      ${usage && usage.names.length === 0 && html`<p class="muted">No LLM call in this range.</p>`}
      ${usage && usage.names.length > 0 && html`<${StackedBars} buckets=${buckets} names=${usage.names} fmt=${fmt} label=${`${metric} per ${groupBy} over the last ${range}`} />
        <${Legend} names=${usage.names} />
        <table class="table compact"><thead><tr><th scope="col">${groupBy}</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Errors</th><th scope="col" class="num">Tokens in</th><th scope="col" class="num">Tokens out</th><th scope="col" class="num">Cost</th></tr></thead>
        <tbody>${usage.names.map((k) => { const t = usage.totals[k]; return html`<tr key=${k}><th scope="row">${k}</th><td class="num">${t.requests}</td><td class="num">${t.errors}</td><td class="num">${t.input_tokens}</td><td class="num">${t.output_tokens}</td><td class="num">${fmtUsd(t.cost_usd)}${t.estimated ? '*' : ''}</td></tr>`; })}</tbody></table>`}
    </section>
  </div>`;
}

// ---- workers ----

export function Workers() {
  const [st, setSt] = useState(null);
  const [err, setErr] = useState(null);
  const [at, setAt] = useState(null);
  usePoll(async () => {
    if (!isOwner()) return;
    try { setSt(await api('GET', '/api/v1/supervisor/status')); setErr(null); setAt(new Date()); } catch (e) { setErr(e); }
  }, 2000);
  if (!isOwner()) return html`<div class="empty-state"><h1>Owners only</h1><p class="muted">The workers page shows the supervisor's processes to the owners of this installation.</p></div>`;
  return html`<div>
    <div class="page-head"><h1>Workers</h1><p class="muted">The supervisor's services and their worker processes, refreshed every 2 seconds${at ? ` (last at ${at.toLocaleTimeString()})` : ''}. Read only.</p></div>
    ${err && html`<${Unavailable} what="The supervisor's status" err=${err} />`}
    ${st && (st.services || []).map((s) => html`<section class="panel" key=${s.name} aria-labelledby=${`svc-${s.name}`}>
      <div class="section-head"><h2 id=${`svc-${s.name}`}>${s.name}</h2><span class="muted small">${s.listen} · ${s.workers.length} of ${s.desired} workers</span></div>
      <table class="table compact"><thead><tr><th scope="col">Worker</th><th scope="col">PID</th><th scope="col">State</th><th scope="col" class="num">CPU</th><th scope="col" class="num">RSS</th><th scope="col" class="num">Loop lag</th><th scope="col" class="num">In flight</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Restarts</th><th scope="col">Started</th></tr></thead>
      <tbody>${s.workers.map((w) => html`<tr key=${w.id}><th scope="row">${w.id}</th><td>${w.pid}</td>
        <td><span class=${`state-pill st-${w.state}`}>${w.state}</span>${w.last_exit && html`<div class="small muted">${w.last_exit}</div>`}</td>
        <td class="num">${w.cpu_percent != null ? `${Number(w.cpu_percent).toFixed(1)}%` : '–'}</td><td class="num">${fmtBytes(w.rss_bytes)}</td>
        <td class="num">${w.loop_lag_ms != null ? `${Number(w.loop_lag_ms).toFixed(1)} ms` : '–'}</td><td class="num">${w.in_flight ?? '–'}</td>
        <td class="num">${w.requests ?? '–'}</td><td class="num">${w.restarts}</td><td>${fmtAgo(w.started_at)}</td></tr>`)}</tbody></table>
    </section>`)}
    ${st && (st.programs || []).length > 0 && html`<section class="panel" aria-labelledby="progs-h"><h2 id="progs-h">Programs</h2>
      <table class="table compact"><thead><tr><th scope="col">Program</th><th scope="col">PID</th><th scope="col">State</th><th scope="col" class="num">Restarts</th><th scope="col">Last exit</th></tr></thead>
      <tbody>${st.programs.map((p) => html`<tr key=${p.name}><th scope="row">${p.name}</th><td>${p.pid}</td><td><span class=${`state-pill st-${p.state}`}>${p.state}</span></td><td class="num">${p.restarts}</td><td>${p.last_exit || '–'}</td></tr>`)}</tbody></table></section>`}
    ${!st && !err && html`<div class="loading">Loading…</div>`}
  </div>`;
}
