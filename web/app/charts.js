// charts.js - small SVG charts drawn by Preact (no library): horizontal
// bars, stacked bars over time, and a ring for a share. Each chart has a
// text alternative (role="img" with a label, or a table beside it).
import { html, useState, useRef, useLayoutEffect } from './lib.js';

// The pixel width of the element ref points at (so charts draw at their real
// size: text keeps its size whatever the panel's width).
function useWidth(initial) {
  const ref = useRef();
  const [w, setW] = useState(initial);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const ro = new ResizeObserver(() => setW(Math.max(200, Math.floor(el.clientWidth))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, w];
}

export const PALETTE = ['#4f46e5', '#0891b2', '#d97706', '#059669', '#db2777', '#7c3aed',
  '#2563eb', '#65a30d', '#dc2626', '#0d9488', '#9333ea', '#ca8a04'];

export function colorFor(name, names) {
  const i = names.indexOf(name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

// rows: [{label, value (0..1), extra (0..1, drawn lighter), note}]
export function HBars({ rows, label }) {
  const [ref, width] = useWidth(300);
  const bar = 14; const gap = 10; const lw = 104; const nw = 64;
  const w = width - lw - nw;
  const hgt = rows.length * (bar + gap) + 4;
  return html`<div ref=${ref} class="chart-box"><svg class="chart" viewBox="0 0 ${width} ${hgt}" width=${width} height=${hgt} role="img" aria-label=${label}>
    ${rows.map((r, i) => {
      const y = i * (bar + gap) + 2;
      return html`<g key=${r.label}>
        <text x="0" y=${y + bar - 3} class="chart-label">${r.label}</text>
        <rect x=${lw} y=${y} width=${w} height=${bar} rx="4" class="chart-track" />
        ${r.extra != null && html`<rect x=${lw} y=${y} width=${Math.max(0, Math.min(1, r.extra)) * w} height=${bar} rx="4" class="chart-extra" />`}
        <rect x=${lw} y=${y + 3} width=${Math.max(0, Math.min(1, r.value)) * w} height=${bar - 6} rx="3" class="chart-value" />
        <text x=${width - 2} y=${y + bar - 3} text-anchor="end" class="chart-note">${r.note}</text>
      </g>`;
    })}
  </svg></div>`;
}

// buckets: [{label, parts: {name: value}}], names: the series, fmt(value)
export function StackedBars({ buckets, names, label, fmt, height = 220 }) {
  const [ref, width] = useWidth(640);
  const left = 64; const bottom = 22; const top = 8;
  const max = Math.max(1e-9, ...buckets.map((b) => names.reduce((s, n) => s + (b.parts[n] || 0), 0)));
  const bw = (width - left) / Math.max(1, buckets.length);
  const ph = height - bottom - top;
  const ticks = [0, 0.5, 1];
  return html`<div ref=${ref} class="chart-box"><svg class="chart" viewBox="0 0 ${width} ${height}" width=${width} height=${height} role="img" aria-label=${label}>
    ${ticks.map((t) => html`<g key=${t}>
      <line x1=${left} x2=${width} y1=${top + ph - t * ph} y2=${top + ph - t * ph} class="chart-grid" />
      <text x=${left - 6} y=${top + ph - t * ph + 4} text-anchor="end" class="chart-note">${fmt(max * t)}</text>
    </g>`)}
    ${buckets.map((b, i) => {
      let y = top + ph;
      return html`<g key=${i}>
        ${names.map((n) => {
          const v = b.parts[n] || 0;
          const hh = (v / max) * ph;
          y -= hh;
          return v > 0 && html`<rect key=${n} x=${left + i * bw + 3} y=${y} width=${Math.max(1, bw - 6)} height=${hh} fill=${colorFor(n, names)}><title>${n}: ${fmt(v)}</title></rect>`;
        })}
        ${(i % Math.ceil(buckets.length / 6) === 0) && html`<text x=${left + i * bw + bw / 2} y=${height - 6} text-anchor="middle" class="chart-note">${b.label}</text>`}
      </g>`;
    })}
  </svg></div>`;
}

export function Legend({ names }) {
  return html`<ul class="legend">${names.map((n) => html`<li key=${n}><span class="swatch" style=${`background:${colorFor(n, names)}`}></span>${n}</li>`)}</ul>`;
}

// A meter: used / limit, with reserved drawn lighter.
export function Meter({ used, reserved = 0, limit, label }) {
  const f = (v) => (limit > 0 ? Math.max(0, Math.min(1, v / limit)) : 0);
  const cls = used + reserved >= limit ? 'over' : (used + reserved) / (limit || 1) >= 0.8 ? 'near' : '';
  return html`<div class=${`meter ${cls}`} role="meter" aria-label=${label} aria-valuemin="0" aria-valuemax=${limit} aria-valuenow=${used}>
    <div class="meter-reserved" style=${`width:${f(used + reserved) * 100}%`}></div>
    <div class="meter-used" style=${`width:${f(used) * 100}%`}></div>
  </div>`;
}
