// task.js - a task's detail (a dialog over the board): every field, its
// blockers, assignment to a role or to the best agent, the agent's result
// (sanitised Markdown or plain text: never HTML), its runs, the live output
// of a running agent, and accept / send back for a task in review. Every
// save sends If-Match; a conflict re-reads the task and says so.
import {
  html, useState, useEffect, useLayoutEffect, useRef, STATUS_LABEL, TYPES, PRIORITIES, ROLES, STATUSES,
  allowedMoves, fmtUsd, fmtMs, fmtAgo,
} from './lib.js';
import { api, sse, toast, canWrite, session } from './api.js';
import { markdown } from './md.js';

function Dialog({ title, onClose, children, wide }) {
  const ref = useRef();
  const back = useRef(document.activeElement);
  // Escape closes it wherever the focus is (from its first paint on).
  useLayoutEffect(() => {
    const esc = (e) => { if (e.key === 'Escape' && !e.defaultPrevented) { e.preventDefault(); onClose(); } };
    document.addEventListener('keydown', esc);
    return () => document.removeEventListener('keydown', esc);
  }, []);
  useLayoutEffect(() => {
    const el = ref.current;
    const first = el.querySelector('[autofocus], input, select, textarea, button');
    (first || el).focus();
    return () => { if (back.current && back.current.focus) back.current.focus(); };
  }, []);
  const key = (e) => {
    if (e.key === 'Escape') return; // the document's listener closes it
    if (e.key !== 'Tab') return;
    const f = [...ref.current.querySelectorAll('button, [href], input, select, textarea, [tabindex="0"]')].filter((x) => !x.disabled);
    if (!f.length) return;
    if (e.shiftKey && document.activeElement === f[0]) { e.preventDefault(); f[f.length - 1].focus(); }
    else if (!e.shiftKey && document.activeElement === f[f.length - 1]) { e.preventDefault(); f[0].focus(); }
  };
  return html`<div class="scrim" onPointerDown=${(e) => { if (e.target === e.currentTarget) onClose(); }}>
    <div class=${`dialog${wide ? ' wide' : ''}`} role="dialog" aria-modal="true" aria-label=${title} ref=${ref} tabindex="-1" onKeyDown=${key}>
      ${children}
    </div>
  </div>`;
}
export { Dialog };

export function NewTask({ pid, onDone }) {
  const [v, setV] = useState({ title: '', description: '', type: 'feature', priority: 'medium' });
  const [err, setErr] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    try {
      const t = await api('POST', `/api/v1/projects/${pid}/tasks`, { body: v });
      toast(`Task “${t.title}” created.`, 'ok');
      onDone(t);
    } catch (x) { setErr(x.message); }
  };
  const set = (k) => (e) => setV({ ...v, [k]: e.target.value });
  return html`<${Dialog} title="New task" onClose=${() => onDone(null)}>
    <form onSubmit=${submit} class="form">
      <h2>New task</h2>
      <label>Title<input required maxlength="500" value=${v.title} onInput=${set('title')} autofocus /></label>
      <label>Description<textarea rows="4" value=${v.description} onInput=${set('description')}></textarea></label>
      <div class="row">
        <label>Type<select value=${v.type} onChange=${set('type')}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
        <label>Priority<select value=${v.priority} onChange=${set('priority')}>${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}</select></label>
      </div>
      ${err && html`<p class="form-error" role="alert">${err}</p>`}
      <div class="actions"><button type="button" class="btn ghost" onClick=${() => onDone(null)}>Cancel</button><button class="btn primary">Create task</button></div>
    </form>
  <//>`;
}

const EDITABLE = ['title', 'description', 'type', 'priority', 'status', 'progress',
  'assigned_role', 'estimated_hours', 'actual_hours', 'blocked_by'];

function formOf(t) {
  return {
    title: t.title, description: t.description || '', type: t.type, priority: t.priority,
    status: t.status, progress: t.progress ?? 0, assigned_role: t.assigned_role || '',
    estimated_hours: t.estimated_hours ?? '', actual_hours: t.actual_hours ?? '',
    blocked_by: (t.blocked_by || []).map(String),
  };
}

// The changed fields of form against t, as the API takes them.
function patchOf(form, t) {
  const base = formOf(t); const p = {};
  for (const k of EDITABLE) {
    if (JSON.stringify(form[k]) === JSON.stringify(base[k])) continue;
    let v = form[k];
    if (k === 'assigned_role') v = v || null;
    if (k === 'estimated_hours' || k === 'actual_hours') v = v === '' ? null : Number(v);
    if (k === 'progress') v = Number(v);
    if (k === 'blocked_by') v = v.map((x) => (/^\d+$/.test(x) ? Number(x) : x));
    p[k] = v;
  }
  return p;
}

function Result({ result }) {
  const [plain, setPlain] = useState(false);
  if (result == null) return null;
  const r = typeof result === 'object' ? result : { content: String(result) };
  const content = typeof r.content === 'string' ? r.content : JSON.stringify(result, null, 2);
  return html`<section class="result" aria-labelledby="result-h">
    <div class="section-head"><h3 id="result-h">Result</h3>
      ${r.agent && html`<span class="muted small">by ${r.agent}${r.model ? ` · ${r.model}` : ''}${r.cost_usd != null ? ` · ${fmtUsd(r.cost_usd)}` : ''}${r.latency_ms != null ? ` · ${fmtMs(r.latency_ms)}` : ''}</span>`}
      <span class="spacer"></span>
      <button class="btn mini ghost" aria-pressed=${plain ? 'true' : 'false'} onClick=${() => setPlain(!plain)}>${plain ? 'Show formatted' : 'Show plain text'}</button>
    </div>
    <div class="result-body" data-result>${plain ? html`<pre class="plain">${content}</pre>` : markdown(content)}</div>
  </section>`;
}

function LiveOutput({ run, onEnd }) {
  const [text, setText] = useState('');
  const [state, setState] = useState(run.state);
  const pre = useRef();
  useEffect(() => {
    const ac = new AbortController();
    let acc = '';
    sse(`/api/v1/runs/${encodeURIComponent(run.id)}/stream`, (type, data) => {
      let d = {};
      try { d = JSON.parse(data); } catch (e) { return; }
      if (type === 'output' && d.text) { acc += d.text; setText(acc); }
      if (type === 'end') { setState(d.state || 'finished'); onEnd(d); }
    }, ac.signal).catch(() => {});
    return () => ac.abort();
  }, [run.id]);
  useEffect(() => { if (pre.current) pre.current.scrollTop = pre.current.scrollHeight; }, [text]);
  return html`<section class="live-output" aria-labelledby="live-h">
    <div class="section-head"><h3 id="live-h">Live output</h3>
      <span class=${`state-pill st-${state}`}>${run.agent || 'agent'} · ${state}</span></div>
    <pre ref=${pre} class="stream" aria-live="polite" data-stream>${text || (state === 'queued' ? 'Waiting for an agent…' : 'Waiting for the first words…')}</pre>
  </section>`;
}

function Runs({ runs }) {
  if (!runs) return html`<p class="muted small">Loading runs…</p>`;
  if (!runs.length) return html`<p class="muted small">No agent has run this task yet.</p>`;
  return html`<table class="table compact" aria-label="Runs of this task">
    <thead><tr><th scope="col">State</th><th scope="col">Agent</th><th scope="col">Model</th><th scope="col" class="num">Cost</th><th scope="col" class="num">Latency</th><th scope="col">When</th></tr></thead>
    <tbody>${runs.map((r) => html`<tr key=${r.id}>
      <td><span class=${`state-pill st-${r.state}`}>${r.state}${r.outcome ? ` · ${r.outcome}` : ''}</span>${r.error && html`<div class="small err-text">${r.error}</div>`}</td>
      <td>${r.agent || '–'}</td><td>${r.model || '–'}</td>
      <td class="num">${r.cost_usd != null ? fmtUsd(r.cost_usd) : '–'}</td>
      <td class="num">${r.state === 'running' || r.state === 'queued' ? '–' : fmtMs(r.latency_ms)}</td><td>${fmtAgo(r.created_at)}</td>
    </tr>`)}</tbody></table>`;
}

function Blockers({ form, setForm, allTasks, taskId, writable }) {
  const [q, setQ] = useState('');
  const all = Object.values(allTasks || {}).flat();
  const title = (id) => (all.find((t) => String(t.id) === String(id)) || {}).title || `task ${id}`;
  const cands = q.trim() ? all.filter((t) => String(t.id) !== String(taskId) && !form.blocked_by.includes(String(t.id))
    && t.title.toLowerCase().includes(q.trim().toLowerCase())).slice(0, 8) : [];
  return html`<fieldset class="blockers"><legend>Blocked by</legend>
    ${form.blocked_by.length === 0 && html`<p class="muted small">Nothing blocks this task.</p>`}
    <ul class="chips">${form.blocked_by.map((id) => html`<li key=${id} class="chip-x"><span>${title(id)}</span>
      ${writable && html`<button type="button" class="btn icon mini" aria-label=${`Remove blocker ${title(id)}`}
        onClick=${() => setForm({ ...form, blocked_by: form.blocked_by.filter((x) => x !== id) })}>×</button>`}</li>`)}</ul>
    ${writable && html`<input type="search" placeholder="Add a blocker: type a title…" aria-label="Find a task to add as a blocker" value=${q} onInput=${(e) => setQ(e.target.value)} />
      ${cands.length > 0 && html`<ul class="suggest">${cands.map((t) => html`<li key=${t.id}><button type="button" class="btn ghost mini"
        aria-label=${`Add blocker ${t.title}`} onClick=${() => { setForm({ ...form, blocked_by: [...form.blocked_by, String(t.id)] }); setQ(''); }}>+ ${t.title}</button></li>`)}</ul>`}`}
  </fieldset>`;
}

function Fields({ form, setForm, task, writable }) {
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const statuses = [task.status, ...allowedMoves(task.status)];
  if (!writable) {
    return html`<dl class="facts">
      <dt>Status</dt><dd>${STATUS_LABEL[task.status]}</dd><dt>Type</dt><dd>${task.type}</dd>
      <dt>Priority</dt><dd>${task.priority}</dd><dt>Progress</dt><dd>${task.progress}%</dd>
      <dt>Role</dt><dd>${task.assigned_role || '–'}</dd><dt>Agent</dt><dd>${task.assigned_agent || '–'}</dd>
      <dt>Estimate</dt><dd>${task.estimated_hours ?? '–'} h</dd><dt>Actual</dt><dd>${task.actual_hours ?? '–'} h</dd>
    </dl>
    <div class="desc">${task.description ? markdown(task.description) : html`<p class="muted">No description.</p>`}</div>`;
  }
  return html`<label>Title<input required maxlength="500" value=${form.title} onInput=${set('title')} /></label>
    <label>Description<textarea rows="6" value=${form.description} onInput=${set('description')}></textarea></label>
    <div class="row">
      <label>Status<select value=${form.status} onChange=${set('status')}>${statuses.map((s) => html`<option value=${s}>${STATUS_LABEL[s]}</option>`)}</select></label>
      <label>Type<select value=${form.type} onChange=${set('type')}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
      <label>Priority<select value=${form.priority} onChange=${set('priority')}>${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}</select></label>
    </div>
    <div class="row">
      <label>Role<select value=${form.assigned_role} onChange=${set('assigned_role')}><option value="">none</option>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
      <label>Progress (%)<input type="number" min="0" max="100" value=${form.progress} onInput=${set('progress')} /></label>
      <label>Estimate (h)<input type="number" min="0" step="0.5" value=${form.estimated_hours} onInput=${set('estimated_hours')} /></label>
      <label>Actual (h)<input type="number" min="0" step="0.5" value=${form.actual_hours} onInput=${set('actual_hours')} /></label>
    </div>`;
}

function Assign({ task, onAssigned }) {
  const [role, setRole] = useState(task.assigned_role || '');
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      const t = await api('POST', `/api/v1/tasks/${task.id}/assign`, { body: role ? { role } : {} });
      toast(role ? `“${task.title}” assigned to the ${role} agents.` : `“${task.title}” assigned to the best agent.`, 'ok');
      onAssigned(t);
    } catch (e) { toast(`Could not assign “${task.title}”: ${e.message}`, 'error'); }
    setBusy(false);
  };
  return html`<div class="assign">
    <label>Assign to<select value=${role} onChange=${(e) => setRole(e.target.value)} aria-label=${`Assign ${task.title} to`}>
      <option value="">the best agent</option>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
    <button class="btn" disabled=${busy || task.status === 'done' || task.status === 'archived'} onClick=${go}
      aria-label=${`Assign ${task.title} to ${role || 'the best agent'}`}>Assign</button>
  </div>`;
}

function Review({ task, save }) {
  const [note, setNote] = useState('');
  const [back, setBack] = useState(false);
  const accept = () => save({ status: 'done' }, `“${task.title}” accepted: done.`);
  const sendBack = (e) => {
    e.preventDefault();
    const who = session().user.username;
    const desc = `${task.description || ''}\n\n---\nSent back by ${who} (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC): ${note.trim()}`.trim();
    save({ status: 'in-progress', description: desc }, `“${task.title}” sent back to In progress.`);
  };
  return html`<section class="review" aria-labelledby="review-h">
    <h3 id="review-h">Review</h3>
    ${!back ? html`<div class="actions left">
      <button class="btn ok" onClick=${accept} aria-label=${`Accept ${task.title}`}>Accept: done</button>
      <button class="btn" onClick=${() => setBack(true)} aria-label=${`Send back ${task.title}`}>Send back…</button>
    </div>` : html`<form onSubmit=${sendBack} class="form">
      <label>What should change?<textarea rows="3" required value=${note} onInput=${(e) => setNote(e.target.value)} autofocus aria-label="Note for the agent: what should change"></textarea></label>
      <div class="actions left"><button class="btn primary" aria-label=${`Send ${task.title} back to In progress`}>Send back to In progress</button>
        <button type="button" class="btn ghost" onClick=${() => setBack(false)}>Cancel</button></div>
    </form>`}
  </section>`;
}

export function TaskDetail({ taskId, pid, hint, allTasks, run, onChanged, onClose }) {
  const [task, setTask] = useState(null);
  const [form, setForm] = useState(null);
  const [runs, setRuns] = useState(null);
  const [err, setErr] = useState(null);
  const [saving, setSaving] = useState(false);
  const writable = canWrite();

  const reload = async () => {
    try {
      const t = await api('GET', `/api/v1/tasks/${taskId}`);
      setTask(t); setForm(formOf(t)); onChanged(t);
      return t;
    } catch (e) { setErr(e); return null; }
  };
  const loadRuns = () => api('GET', `/api/v1/runs?task_id=${encodeURIComponent(taskId)}&limit=100`)
    .then((r) => setRuns(r.items.slice().reverse())).catch(() => setRuns([]));
  useEffect(() => { reload(); loadRuns(); }, [taskId]);
  // The board's copy moved on (a live event): follow it unless editing.
  useEffect(() => {
    if (hint && task && hint.version > task.version) {
      const dirty = Object.keys(patchOf(form, task)).length > 0;
      if (!dirty) reload();
      loadRuns();
    }
  }, [hint && hint.version]);
  useEffect(() => { if (run) loadRuns(); }, [run && run.id, run && run.state]);

  const save = async (patch, okText) => {
    if (!Object.keys(patch).length) { toast('Nothing changed.', 'info'); return; }
    setSaving(true);
    try {
      const t = await api('PATCH', `/api/v1/tasks/${task.id}`, { body: patch, ifMatch: task.version });
      setTask(t); setForm(formOf(t)); onChanged(t);
      toast(okText || `“${t.title}” saved.`, 'ok');
    } catch (e) {
      if (e.status === 412) {
        await reload();
        toast('Someone else changed this task while you were editing: it now shows their version. Your changes were not saved; make them again.', 'error');
      } else toast(`Not saved: ${e.message}`, 'error');
    }
    setSaving(false);
  };
  const del = async () => {
    if (!confirm(`Delete “${task.title}”? This cannot be undone.`)) return;
    try { await api('DELETE', `/api/v1/tasks/${task.id}`, { ifMatch: task.version }); toast(`“${task.title}” deleted.`, 'ok'); onClose(); } catch (e) { toast(`Not deleted: ${e.message}`, 'error'); }
  };

  const title = task ? task.title : hint ? hint.title : 'Task';
  const active = run || (runs || []).find((r) => r.state === 'running' || r.state === 'queued');
  return html`<${Dialog} title=${`Task: ${title}`} onClose=${onClose} wide>
    ${err && html`<div class="pad"><h2>This task cannot be shown</h2><p class="muted">${err.message}</p><button class="btn" onClick=${onClose}>Close</button></div>`}
    ${!err && !task && html`<div class="pad loading">Loading…</div>`}
    ${task && form && html`<div class="detail">
      <div class="detail-head">
        <span class=${`dot-status s-${task.status}`} aria-hidden="true"></span>
        <span class="muted small">${STATUS_LABEL[task.status]} · version ${task.version} · updated ${fmtAgo(task.updated_at)}</span>
        <span class="spacer"></span>
        <button class="btn icon" aria-label="Close the task" onClick=${onClose}>×</button>
      </div>
      <h2 class="detail-title">${task.title}</h2>
      <div class="detail-grid">
        <form class="form" onSubmit=${(e) => { e.preventDefault(); save(patchOf(form, task)); }}>
          <${Fields} form=${form} setForm=${setForm} task=${task} writable=${writable} />
          <${Blockers} form=${form} setForm=${setForm} allTasks=${allTasks} taskId=${task.id} writable=${writable} />
          ${writable && html`<div class="actions left">
            <button class="btn primary" disabled=${saving} aria-label=${`Save ${task.title}`}>${saving ? 'Saving…' : 'Save changes'}</button>
            <button type="button" class="btn ghost" onClick=${() => setForm(formOf(task))}>Undo edits</button>
            <span class="spacer"></span>
            <button type="button" class="btn danger ghost" onClick=${del} aria-label=${`Delete ${task.title}`}>Delete</button>
          </div>`}
        </form>
        <aside class="side">
          ${writable && html`<${Assign} task=${task} onAssigned=${(t) => { setTask(t); setForm(formOf(t)); onChanged(t); loadRuns(); }} />`}
          ${active && html`<${LiveOutput} key=${active.id} run=${active} onEnd=${() => { loadRuns(); setTimeout(reload, 300); }} />`}
          ${writable && task.status === 'review' && html`<${Review} task=${task} save=${save} />`}
          <${Result} result=${task.result} />
          <section aria-labelledby="runs-h"><h3 id="runs-h">Runs</h3><${Runs} runs=${runs} /></section>
        </aside>
      </div>
    </div>`}
  <//>`;
}
