// lib.js - the browser libraries (vendored in /vendor, versions in the
// folder names; web/vendor.sh refreshes them) and small helpers every page
// shares.
import { h, render, Fragment } from '../vendor/preact-10.29.8/preact.mjs';
import {
  useState, useEffect, useRef, useMemo, useCallback, useLayoutEffect,
} from '../vendor/preact-10.29.8/hooks.mjs';
import htm from '../vendor/htm-3.1.1/htm.mjs';

export const html = htm.bind(h);
export {
  h, render, Fragment, useState, useEffect, useRef, useMemo, useCallback, useLayoutEffect,
};

export const STATUSES = ['todo', 'in-progress', 'review', 'done', 'archived'];
export const STATUS_LABEL = {
  todo: 'To do', 'in-progress': 'In progress', review: 'Review', done: 'Done', archived: 'Archived',
};
export const TYPES = ['feature', 'bugfix', 'enhancement', 'tech-debt'];
export const PRIORITIES = ['high', 'medium', 'low'];
export const ROLES = ['architect', 'developer', 'code-reviewer', 'tester', 'documenter',
  'marketer', 'presenter', 'devops', 'security', 'project-manager', 'decision-maker', 'monitor'];

// The backend's status rules (docs/backend.md): where a task may go from
// where it is. The backend decides; this only spares a request that would be
// refused, and says why.
const NEXT = {
  todo: ['in-progress'],
  'in-progress': ['review', 'todo'],
  review: ['done', 'in-progress'],
  done: [],
  archived: [],
};
export function allowedMoves(status) {
  const to = [...(NEXT[status] || [])];
  if (status !== 'archived') to.push('archived');
  return to;
}
export function whyRefused(from, to) {
  if (from === to) return null;
  if (allowedMoves(from).includes(to)) return null;
  if (from === 'done') return 'a done task can only be archived';
  if (from === 'archived') return 'an archived task stays archived';
  const can = allowedMoves(from).map((s) => STATUS_LABEL[s]).join(', ');
  return `from ${STATUS_LABEL[from]} a task can go to ${can}`;
}

export function fmtUsd(v) {
  const n = Number(v || 0);
  if (n === 0) return '$0';
  if (n < 0.000001) return '<$0.000001';
  if (n < 0.01) return `$${n.toPrecision(2)}`;
  return `$${n.toFixed(2)}`;
}
export function fmtMs(v) {
  if (v == null) return '–';
  return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}
export function fmtBytes(v) {
  if (v == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let n = Number(v); let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
export function fmtAgo(iso) {
  if (!iso) return '–';
  const t = typeof iso === 'number' ? iso * 1000 : Date.parse(iso);
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
export function pct(v) {
  return v == null ? '–' : `${Math.round(Number(v) * 100)}%`;
}
