// md.js - a small Markdown reader that builds Preact nodes, never HTML:
// every piece of the source ends up as a text node, so `<script>` or
// `onerror=` in an agent's answer shows as text and cannot run. Headings,
// paragraphs, lists, block quotes, fenced code, inline code, bold, italic and
// links (http, https and mailto only; opened without a referrer).
import { h } from './lib.js';

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

function inline(text, key = 0) {
  const out = [];
  const re = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let last = 0; let m; let k = key;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[2] !== undefined) out.push(h('code', { key: k++ }, m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) out.push(h('strong', { key: k++ }, inline(m[3] || m[4], k * 100)));
    else if (m[5] !== undefined || m[6] !== undefined) out.push(h('em', { key: k++ }, inline(m[5] || m[6], k * 100)));
    else if (m[7] !== undefined) {
      out.push(SAFE_URL.test(m[8])
        ? h('a', { key: k++, href: m[8], rel: 'noopener noreferrer nofollow', target: '_blank' }, m[7])
        : `${m[7]} (${m[8]})`);
    }
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function list(lines, i, ordered) {
  const items = [];
  const re = ordered ? /^\s*\d+[.)]\s+(.*)$/ : /^\s*[-*+]\s+(.*)$/;
  while (i < lines.length && re.test(lines[i])) {
    items.push(h('li', { key: i }, inline(lines[i].match(re)[1])));
    i++;
  }
  return [h(ordered ? 'ol' : 'ul', { key: `l${i}` }, items), i];
}

// Markdown text -> an array of Preact nodes.
export function markdown(src) {
  const lines = String(src == null ? '' : src).replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)\s*$/);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      out.push(h('pre', { key: i, class: 'code' }, h('code', null, body.join('\n'))));
      continue;
    }
    const hd = line.match(/^(#{1,6})\s+(.*)$/);
    if (hd) {
      const level = Math.min(hd[1].length + 2, 6); // inside a page: h3..h6
      out.push(h(`h${level}`, { key: i }, inline(hd[2])));
      i++;
      continue;
    }
    if (/^\s*[-*+]\s+/.test(line)) { const [n, j] = list(lines, i, false); out.push(n); i = j; continue; }
    if (/^\s*\d+[.)]\s+/.test(line)) { const [n, j] = list(lines, i, true); out.push(n); i = j; continue; }
    if (/^\s*>/.test(line)) {
      const q = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) q.push(lines[i++].replace(/^\s*>\s?/, ''));
      out.push(h('blockquote', { key: i }, markdown(q.join('\n'))));
      continue;
    }
    if (!line.trim()) { i++; continue; }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(\s*(```|~~~|>|[-*+]\s|\d+[.)]\s)|#{1,6}\s)/.test(lines[i])) {
      para.push(lines[i++]);
    }
    if (!para.length) para.push(lines[i++]);
    out.push(h('p', { key: i }, inline(para.join('\n'))));
  }
  return out;
}
