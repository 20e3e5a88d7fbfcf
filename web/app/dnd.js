// dnd.js - dragging a card to another column with the pointer (mouse, pen
// or touch), without the HTML drag-and-drop API. A mouse drag starts after
// the pointer moved 6 px; a touch drag only after the finger rested 350 ms
// on the card (before that, the finger scrolls the column), so a card is
// never dragged by accident while scrolling. A drop target is any element
// with data-drop="STATUS" under the pointer. Escape cancels.

const MOVE_PX = 6;
const HOLD_MS = 350;

// Starts watching a pointerdown on a card. opts: {card (the element), task,
// canDrop(status) -> reason|null, onDrop(task, status), onRefused(reason)}.
export function startDrag(e, opts) {
  if (e.button !== 0 || e.target.closest('button, a, input, select, textarea')) return;
  const touch = e.pointerType === 'touch';
  const x0 = e.clientX; const y0 = e.clientY;
  let ghost = null; let over = null; let armed = !touch; let holdTimer = null;
  const card = opts.card;

  const target = (x, y) => {
    const el = document.elementFromPoint(x, y);
    return el ? el.closest('[data-drop]') : null;
  };
  const begin = () => {
    const r = card.getBoundingClientRect();
    ghost = card.cloneNode(true);
    ghost.classList.add('drag-ghost');
    ghost.removeAttribute('id');
    ghost.style.width = `${r.width}px`;
    ghost.style.left = `${r.left}px`;
    ghost.style.top = `${r.top}px`;
    ghost.dataset.dx = String(x0 - r.left);
    ghost.dataset.dy = String(y0 - r.top);
    document.body.appendChild(ghost);
    card.classList.add('dragging');
    document.body.classList.add('is-dragging');
    for (const el of document.querySelectorAll('[data-drop]')) {
      el.classList.toggle('drop-refused', !!opts.canDrop(el.dataset.drop));
    }
  };
  const move = (ev) => {
    if (!ghost) {
      if (!armed) {
        if (Math.hypot(ev.clientX - x0, ev.clientY - y0) > MOVE_PX) cleanup();
        return;
      }
      if (Math.hypot(ev.clientX - x0, ev.clientY - y0) < MOVE_PX) return;
      begin();
    }
    ev.preventDefault();
    ghost.style.left = `${ev.clientX - Number(ghost.dataset.dx)}px`;
    ghost.style.top = `${ev.clientY - Number(ghost.dataset.dy)}px`;
    const t = target(ev.clientX, ev.clientY);
    if (t !== over) {
      if (over) over.classList.remove('drop-over');
      over = t;
      if (over) over.classList.add('drop-over');
    }
  };
  const up = (ev) => {
    const dropped = ghost ? target(ev.clientX, ev.clientY) : null;
    const wasDrag = !!ghost;
    cleanup();
    if (wasDrag) {
      const swallow = (c) => { c.stopPropagation(); c.preventDefault(); };
      window.addEventListener('click', swallow, { capture: true, once: true });
      setTimeout(() => window.removeEventListener('click', swallow, { capture: true }), 0);
    }
    if (!dropped) return;
    const status = dropped.dataset.drop;
    if (status === opts.task.status) return;
    const why = opts.canDrop(status);
    if (why) opts.onRefused(why);
    else opts.onDrop(opts.task, status);
  };
  const key = (ev) => { if (ev.key === 'Escape') cleanup(); };
  // Once a touch drag began, the finger no longer scrolls.
  const touchmove = (ev) => { if (ghost) ev.preventDefault(); };
  function cleanup() {
    clearTimeout(holdTimer);
    window.removeEventListener('pointermove', move);
    window.removeEventListener('pointerup', up);
    window.removeEventListener('pointercancel', cleanup);
    window.removeEventListener('keydown', key);
    window.removeEventListener('touchmove', touchmove);
    if (ghost) ghost.remove();
    ghost = null;
    card.classList.remove('dragging', 'hold');
    document.body.classList.remove('is-dragging');
    for (const el of document.querySelectorAll('[data-drop]')) el.classList.remove('drop-over', 'drop-refused');
  }
  if (touch) {
    holdTimer = setTimeout(() => { armed = true; card.classList.add('hold'); begin(); }, HOLD_MS);
  }
  window.addEventListener('pointermove', move, { passive: false });
  window.addEventListener('pointerup', up);
  window.addEventListener('pointercancel', cleanup);
  window.addEventListener('keydown', key);
  window.addEventListener('touchmove', touchmove, { passive: false });
}
