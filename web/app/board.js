// board.js - a project's board: columns by status, cards, filters, soft
// column limits, moves by drag and drop and by buttons, live updates.
//
// A column renders only the cards in view (fixed-height cards, the rest is
// spacer): a column of thousands stays fast. Every move sends If-Match with
// the card's version; a conflict re-reads the card and says so; a move the
// status rules refuse snaps back and says why.
import {
  html, useState, useEffect, useRef, useMemo, useCallback, useLayoutEffect,
  STATUSES, STATUS_LABEL, TYPES, PRIORITIES, ROLES, allowedMoves, whyRefused,
} from './lib.js';
import { api, toast, emit, canWrite, ApiError } from './api.js';
import { Live } from './live.js';
import { startDrag } from './dnd.js';
import { TaskDetail, NewTask } from './task.js';

const CARD_H = 118; // px a card takes, its gap included (app.css: .card)
const OVERSCAN = 6;
const PRIO_RANK = { high: 0, medium: 1, low: 2 };
const DEFAULT_LIMITS = { 'in-progress': 8, review: 6 };

function byBoardOrder(a, b) {
  return (PRIO_RANK[a.priority] - PRIO_RANK[b.priority])
    || (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0)
    || (String(a.id) < String(b.id) ? -1 : 1);
}

// A task as the board keeps it: without its result body.
function slim(t) {
  if (!t || !('result' in t)) return t;
  const { result, ...rest } = t;
  return { ...rest, has_result: result != null };
}

function limitsKey(pid) { return `vapora.limits.${pid}`; }
function loadLimits(pid) {
  try { return { ...DEFAULT_LIMITS, ...JSON.parse(localStorage.getItem(limitsKey(pid)) || '{}') }; } catch (e) { return { ...DEFAULT_LIMITS }; }
}

export function moveLabel(to) {
  return to === 'archived' ? 'Archive' : `Move to ${STATUS_LABEL[to]}`;
}

function MoveMenu({ task, onMove, onClose }) {
  const ref = useRef();
  useEffect(() => {
    const first = ref.current && ref.current.querySelector('button');
    if (first) first.focus();
    const out = (e) => { if (ref.current && !ref.current.contains(e.target)) onClose(); };
    document.addEventListener('pointerdown', out);
    return () => document.removeEventListener('pointerdown', out);
  }, []);
  const key = (e) => {
    const items = [...ref.current.querySelectorAll('button')];
    const i = items.indexOf(document.activeElement);
    if (e.key === 'Escape') { e.stopPropagation(); e.preventDefault(); onClose(true); }
    if (e.key === 'ArrowDown') { e.preventDefault(); e.stopPropagation(); items[(i + 1) % items.length].focus(); }
    if (e.key === 'ArrowUp') { e.preventDefault(); e.stopPropagation(); items[(i - 1 + items.length) % items.length].focus(); }
  };
  return html`<div class="menu" role="menu" ref=${ref} onKeyDown=${key} aria-label=${`Moves for ${task.title}`}>
    ${allowedMoves(task.status).map((to) => html`<button role="menuitem" key=${to}
        aria-label=${to === 'archived' ? `Archive ${task.title}` : `Move ${task.title} to ${STATUS_LABEL[to]}`}
        onClick=${() => { onClose(); onMove(task, to); }}>
      <span class=${`dot-status s-${to}`} aria-hidden="true"></span>${moveLabel(to)}
    </button>`)}
  </div>`;
}

function Card({ task, run, top, pid, writable, onMove, busy }) {
  const [menu, setMenu] = useState(false);
  const ref = useRef();
  const fwd = allowedMoves(task.status).filter((s) => s !== 'archived' && s !== 'todo')[0];
  const who = task.assigned_agent || task.assigned_role;
  const down = (e) => {
    if (!writable) return;
    startDrag(e, {
      card: ref.current, task,
      canDrop: (to) => (to === task.status ? null : whyRefused(task.status, to)),
      onDrop: onMove,
      onRefused: (why) => toast(`“${task.title}” stays in ${STATUS_LABEL[task.status]}: ${why}.`, 'warn'),
    });
  };
  const open = () => { location.hash = `#/p/${pid}/t/${task.id}`; };
  return html`<article class=${`card p-${task.priority}${busy ? ' busy' : ''}${run ? ' running' : ''}${writable ? '' : ' readonly'}`} ref=${ref}
      style=${`top:${top}px`} tabindex="0" data-task=${task.id} aria-label=${task.title}
      onPointerDown=${down} onDblClick=${open}>
    <div class="card-top">
      <span class=${`chip type-${task.type}`}>${task.type}</span>
      <span class=${`prio prio-${task.priority}`} title=${`${task.priority} priority`}>${task.priority}</span>
      ${task.blocked_by && task.blocked_by.length > 0 && html`<span class="chip blocked" title="Blocked by other tasks">blocked</span>`}
      ${task.has_result && task.status === 'review' && html`<span class="chip result">result</span>`}
    </div>
    <button class="card-title" onClick=${open} aria-label=${`Open ${task.title}`}>${task.title}</button>
    <div class="card-foot">
      ${run ? html`<span class="badge-run" title=${`Run ${run.state}`}><span class="pulse" aria-hidden="true"></span>${run.agent || 'agent'} ${run.state === 'queued' ? 'queued' : 'working'}</span>`
        : who ? html`<span class="assignee" title="Assigned to">${who}</span>` : html`<span class="assignee none">unassigned</span>`}
      <span class="spacer"></span>
      ${writable && fwd && html`<button class="btn mini" onClick=${() => onMove(task, fwd)}
          aria-label=${`Move ${task.title} to ${STATUS_LABEL[fwd]}`}>→ ${STATUS_LABEL[fwd]}</button>`}
      ${writable && html`<button class="btn mini icon" aria-haspopup="menu" aria-expanded=${menu ? 'true' : 'false'}
          aria-label=${`More moves for ${task.title}`} onClick=${() => setMenu(!menu)}>⋯</button>`}
    </div>
    ${menu && html`<${MoveMenu} task=${task} onMove=${onMove} onClose=${(refocus) => { setMenu(false); if (refocus && ref.current) ref.current.focus(); }} />`}
  </article>`;
}

function LimitEditor({ status, limit, onSet }) {
  const [open, setOpen] = useState(false);
  const [v, setV] = useState(limit || '');
  if (!open) {
    return html`<button class="btn mini ghost" aria-label=${`Set the card limit of ${STATUS_LABEL[status]}`}
      onClick=${() => { setV(limit || ''); setOpen(true); }}>${limit ? `limit ${limit}` : 'set limit'}</button>`;
  }
  const save = (e) => { e.preventDefault(); onSet(Number(v) > 0 ? Number(v) : null); setOpen(false); };
  return html`<form class="limit-form" onSubmit=${save}>
    <input type="number" min="0" max="999" value=${v} onInput=${(e) => setV(e.target.value)}
      aria-label=${`Card limit of ${STATUS_LABEL[status]} (0: none)`} autofocus />
    <button class="btn mini">Set</button>
  </form>`;
}

function Column({ status, tasks, total, limit, runs, pid, writable, onMove, onLimit, busy, colRef, onScrolled }) {
  const body = useRef();
  const [view, setView] = useState({ top: 0, h: 800 });
  useLayoutEffect(() => {
    const el = body.current;
    colRef(status, el);
    const ro = new ResizeObserver(() => setView({ top: el.scrollTop, h: el.clientHeight }));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const scrolled = () => {
    const el = body.current;
    requestAnimationFrame(() => setView({ top: el.scrollTop, h: el.clientHeight }));
    onScrolled();
  };
  const first = Math.max(0, Math.floor(view.top / CARD_H) - OVERSCAN);
  const last = Math.min(tasks.length, Math.ceil((view.top + view.h) / CARD_H) + OVERSCAN);
  const over = limit && total > limit;
  const shown = tasks.length !== total ? `${tasks.length} of ${total}` : `${total}`;
  return html`<section class=${`column s-${status}${over ? ' over' : ''}`} data-drop=${status}
      aria-labelledby=${`col-${status}`}>
    <header class="col-head">
      <span class=${`dot-status s-${status}`} aria-hidden="true"></span>
      <h2 id=${`col-${status}`}>${STATUS_LABEL[status]}</h2>
      <span class="col-count" data-count=${total} aria-label=${`${shown} cards`}>${shown}</span>
      ${over && html`<span class="over-badge" role="note">over limit of ${limit}</span>`}
      <span class="spacer"></span>
      ${writable && status !== 'archived' && html`<${LimitEditor} status=${status} limit=${limit} onSet=${(n) => onLimit(status, n)} />`}
    </header>
    <div class="col-body" ref=${body} onScroll=${scrolled} role="list" aria-label=${`${STATUS_LABEL[status]} cards`}>
      <div class="col-space" style=${`height:${tasks.length * CARD_H}px`}>
        ${tasks.slice(first, last).map((t, i) => html`<div role="listitem" key=${t.id}>
          <${Card} task=${t} run=${runs.get(String(t.id))} top=${(first + i) * CARD_H} pid=${pid}
            writable=${writable} onMove=${onMove} busy=${busy.has(String(t.id))} />
        </div>`)}
      </div>
      ${tasks.length === 0 && html`<p class="col-empty">${total ? 'No card matches the filters' : 'No cards'}</p>`}
    </div>
  </section>`;
}

function Filters({ f, setF, archived, setArchived, onAdd, writable }) {
  const sel = (key, label, options) => html`<label class="filter">
    <span class="sr-only">${label}</span>
    <select aria-label=${label} value=${f[key]} onChange=${(e) => setF({ ...f, [key]: e.target.value })}>
      ${options.map(([v, t]) => html`<option value=${v}>${t}</option>`)}
    </select></label>`;
  return html`<div class="toolbar" role="search">
    <input class="search" type="search" placeholder="Filter cards…" aria-label="Filter cards by text"
      value=${f.text} onInput=${(e) => setF({ ...f, text: e.target.value })} />
    ${sel('type', 'Filter by type', [['', 'All types'], ...TYPES.map((t) => [t, t])])}
    ${sel('priority', 'Filter by priority', [['', 'All priorities'], ...PRIORITIES.map((p) => [p, p])])}
    ${sel('role', 'Filter by role', [['', 'All roles'], ['-', 'Unassigned'], ...ROLES.map((r) => [r, r])])}
    <label class="check"><input type="checkbox" checked=${archived} onChange=${(e) => setArchived(e.target.checked)} /> Show archived</label>
    <span class="spacer"></span>
    ${writable && html`<button class="btn primary" onClick=${onAdd}>+ New task</button>`}
  </div>`;
}

function matches(t, f, q) {
  if (f.type && t.type !== f.type) return false;
  if (f.priority && t.priority !== f.priority) return false;
  if (f.role === '-' && (t.assigned_role || t.assigned_agent)) return false;
  if (f.role && f.role !== '-' && t.assigned_role !== f.role) return false;
  if (q && !(`${t.title}\n${t.description || ''}\n${t.assigned_agent || ''}`.toLowerCase().includes(q))) return false;
  return true;
}

export function Board({ projectId, taskId }) {
  const [project, setProject] = useState(null);
  const [cols, setCols] = useState(null); // status -> tasks
  const [counts, setCounts] = useState({});
  const [err, setErr] = useState(null);
  const [f, setF] = useState({ text: '', type: '', priority: '', role: '' });
  const [archived, setArchived] = useState(false);
  const [runs, setRuns] = useState(new Map());
  const [busy, setBusy] = useState(new Set());
  const [limits, setLimits] = useState(() => loadLimits(projectId));
  const [adding, setAdding] = useState(false);
  const colEls = useRef({});
  const focusWant = useRef(null);
  const state = useRef({});
  state.current = { cols, archived };
  const writable = canWrite();

  const load = useCallback(async () => {
    window.__boardLoads = (window.__boardLoads || 0) + 1; // read by the browser tests
    const t0 = performance.now();
    try {
      const [p, b] = await Promise.all([
        api('GET', `/api/v1/projects/${projectId}`),
        api('GET', `/api/v1/projects/${projectId}/board${state.current.archived ? '?archived=true' : ''}`),
      ]);
      const t1 = performance.now();
      const next = {}; const cnt = {};
      for (const c of b.columns) { next[c.status] = c.tasks; cnt[c.status] = c.count ?? c.tasks.length; }
      setProject(p); setCols(next); setCounts(cnt); setErr(null);
      requestAnimationFrame(() => {
        window.__boardTimings = { fetchMs: t1 - t0, renderMs: performance.now() - t1 };
      });
    } catch (e) {
      if (e instanceof ApiError) setErr(e);
    }
    api('GET', '/api/v1/runs?limit=500&state=running').then((r) => api('GET', '/api/v1/runs?limit=500&state=queued').then((q) => {
      const m = new Map();
      for (const run of [...r.items, ...q.items]) if (String(run.project_id) === String(projectId)) m.set(String(run.task_id), run);
      setRuns(m);
    })).catch(() => {});
  }, [projectId]);

  useEffect(() => { load(); }, [load, archived]);

  // Puts t where the board's order says (or takes it away).
  const upsert = useCallback((t, removeId) => {
    setCols((c) => {
      if (!c) return c;
      const id = String(removeId ?? t.id);
      const next = {};
      let old = null;
      for (const s of STATUSES) {
        const list = c[s] || [];
        const i = list.findIndex((x) => String(x.id) === id);
        if (i >= 0) { old = list[i]; next[s] = list.slice(0, i).concat(list.slice(i + 1)); } else next[s] = list;
      }
      if (old && t && old.version > t.version) return c; // an older event
      if (t && (t.status !== 'archived' || state.current.archived)) {
        const list = next[t.status].slice();
        let lo = 0; let hi = list.length;
        while (lo < hi) { const mid = (lo + hi) >> 1; if (byBoardOrder(list[mid], t) < 0) lo = mid + 1; else hi = mid; }
        list.splice(lo, 0, slim(t));
        next[t.status] = list;
      }
      setCounts((k) => {
        const n = { ...k };
        if (old) n[old.status] = Math.max(0, (n[old.status] || 1) - 1);
        if (t) n[t.status] = (n[t.status] || 0) + 1;
        return n;
      });
      return next;
    });
  }, []);

  useEffect(() => {
    const live = new Live(projectId, {
      onEvent: (ev) => {
        if (ev.project_id != null && String(ev.project_id) !== String(projectId)) return;
        if (ev.type === 'task.created' || ev.type === 'task.updated') upsert(ev.data);
        else if (ev.type === 'task.deleted') upsert(null, ev.id);
        else if (ev.type === 'project.deleted') { toast('This project was deleted.', 'warn'); location.hash = '#/projects'; }
        else if (ev.type === 'project.updated') setProject(ev.data);
        else if (ev.type && ev.type.startsWith('agent.run.')) {
          const run = ev.data || {};
          setRuns((m) => {
            const n = new Map(m);
            if (run.state === 'running' || run.state === 'queued') n.set(String(run.task_id), run);
            else n.delete(String(run.task_id));
            return n;
          });
        }
      },
      onState: (st) => emit('live', { ...st, retry: () => live.now() }),
      onReconnect: () => load(),
    });
    return () => { live.close(); emit('live', null); };
  }, [projectId]);

  const findTask = (id) => {
    for (const s of STATUSES) {
      const t = (state.current.cols?.[s] || []).find((x) => String(x.id) === String(id));
      if (t) return t;
    }
    return null;
  };

  const move = useCallback(async (task, to) => {
    const why = whyRefused(task.status, to);
    if (why) { toast(`“${task.title}” stays in ${STATUS_LABEL[task.status]}: ${why}.`, 'warn'); return; }
    const id = String(task.id);
    setBusy((b) => new Set(b).add(id));
    upsert({ ...task, status: to });
    try {
      const t = await api('PATCH', `/api/v1/tasks/${id}`, { body: { status: to }, ifMatch: task.version });
      upsert(t);
      toast(`“${task.title}” moved to ${STATUS_LABEL[to]}.`, 'ok');
    } catch (e) {
      if (e.status === 412) {
        try { upsert(await api('GET', `/api/v1/tasks/${id}`)); } catch (x) { upsert(task); }
        toast(`“${task.title}” was changed by someone else meanwhile: the board shows it as it is now. Your move was not made; try again.`, 'error');
      } else if (e.status === 404) {
        upsert(null, id);
        toast(`“${task.title}” was deleted meanwhile.`, 'error');
      } else {
        upsert(task);
        toast(`“${task.title}” cannot move to ${STATUS_LABEL[to]}: ${e.message}`, 'error');
      }
    } finally {
      setBusy((b) => { const n = new Set(b); n.delete(id); return n; });
    }
  }, []);

  const setLimit = (status, n) => {
    const next = { ...limits, [status]: n };
    setLimits(next);
    localStorage.setItem(limitsKey(projectId), JSON.stringify(next));
  };

  const q = f.text.trim().toLowerCase();
  const shown = useMemo(() => {
    if (!cols) return null;
    const out = {};
    for (const s of STATUSES) out[s] = (f.type || f.priority || f.role || q) ? (cols[s] || []).filter((t) => matches(t, f, q)) : (cols[s] || []);
    return out;
  }, [cols, f.type, f.priority, f.role, q]);

  const visible = STATUSES.filter((s) => s !== 'archived' || archived);

  // Keyboard: arrows move between cards and columns; Enter opens a card.
  const onKey = (e) => {
    const card = e.target.closest && e.target.closest('[data-task]');
    if (!card || e.target !== card || !shown) return;
    const t = findTask(card.dataset.task);
    if (!t) return;
    let ci = visible.indexOf(t.status);
    let idx = shown[t.status].findIndex((x) => String(x.id) === String(t.id));
    if (e.key === 'Enter') { e.preventDefault(); location.hash = `#/p/${projectId}/t/${t.id}`; return; }
    if (e.key === 'ArrowDown') idx++;
    else if (e.key === 'ArrowUp') idx--;
    else if (e.key === 'ArrowRight') ci++;
    else if (e.key === 'ArrowLeft') ci--;
    else if (e.key === 'Home') idx = 0;
    else if (e.key === 'End') idx = shown[t.status].length - 1;
    else return;
    e.preventDefault();
    for (let n = 0; n < visible.length && ci >= 0 && ci < visible.length && !shown[visible[ci]].length; n++) ci += e.key === 'ArrowLeft' ? -1 : 1;
    if (ci < 0 || ci >= visible.length) return;
    const list = shown[visible[ci]];
    if (!list.length) return;
    idx = Math.max(0, Math.min(list.length - 1, idx));
    const el = colEls.current[visible[ci]];
    if (el) {
      const y = idx * CARD_H;
      if (y < el.scrollTop) el.scrollTop = y;
      else if (y + CARD_H > el.scrollTop + el.clientHeight) el.scrollTop = y + CARD_H - el.clientHeight;
    }
    focusWant.current = String(list[idx].id);
    tryFocus(); // a card in view is there already; another one after the scroll renders it
    if (focusWant.current) requestAnimationFrame(() => requestAnimationFrame(tryFocus));
  };
  const tryFocus = () => {
    if (!focusWant.current) return;
    const el = document.querySelector(`[data-task="${CSS.escape(focusWant.current)}"]:not(.drag-ghost)`);
    if (el) { el.focus(); focusWant.current = null; }
  };

  if (err) {
    return html`<div class="empty-state"><h1>${err.status === 404 ? 'This project does not exist' : 'The board could not be read'}</h1>
      <p class="muted">${err.message}</p><a class="btn" href="#/projects">All projects</a></div>`;
  }
  if (!cols) return html`<div class="loading" aria-busy="true">Loading the board…</div>`;
  const open = taskId ? findTask(taskId) : null;
  return html`<div class="board-page" onKeyDown=${onKey}>
    <div class="board-head">
      <div>
        <a class="crumb" href="#/projects">Projects</a>
        <h1>${project ? project.name : ''}</h1>
        ${project && project.description && html`<p class="muted">${project.description}</p>`}
      </div>
    </div>
    <${Filters} f=${f} setF=${setF} archived=${archived} setArchived=${setArchived} writable=${writable} onAdd=${() => setAdding(true)} />
    <div class=${`board cols-${visible.length}`}>
      ${visible.map((s) => html`<${Column} key=${s} status=${s} tasks=${shown[s]} total=${counts[s] ?? 0}
          limit=${limits[s]} runs=${runs} pid=${projectId} writable=${writable && s !== 'archived'}
          onMove=${move} onLimit=${setLimit} busy=${busy}
          colRef=${(st, el) => { colEls.current[st] = el; }} onScrolled=${tryFocus} />`)}
    </div>
    ${taskId && html`<${TaskDetail} key=${taskId} taskId=${taskId} pid=${projectId} hint=${open}
        allTasks=${cols} run=${runs.get(String(taskId))}
        onChanged=${(t) => upsert(t)} onClose=${() => { location.hash = `#/p/${projectId}`; }} />`}
    ${adding && html`<${NewTask} pid=${projectId} onDone=${(t) => { setAdding(false); if (t) upsert(t); }} />`}
  </div>`;
}
