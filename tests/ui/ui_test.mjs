// ui_test.mjs - the web board in headless Chromium (puppeteer-core) against
// the real suite (suite.mjs): every scenario of issue 15's test list, with a
// screenshot of each page in $UI_OUT (build/ui-screenshots). Prints one line
// per test and "ui: N passed, M failed"; exits 1 on a failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { Suite, sleep, waitFor, ADMIN_PW } from './suite.mjs';

const ROOT = process.env.VAPORA_ROOT;
const BIN = process.env.VAPORA_BIN_DIR;
const OUT = process.env.UI_OUT;
const CHROME = process.env.CHROMIUM || '/usr/bin/chromium';
const ONLY = process.env.UI_ONLY ? new RegExp(process.env.UI_ONLY) : null;
fs.mkdirSync(OUT, { recursive: true });
const work = fs.mkdtempSync(path.join(process.env.VAPORA_TEST_TMP || os.tmpdir(), 'ui-'));
const suite = new Suite(ROOT, BIN, work);
const results = [];
const facts = {};
let browser; let page; let base;

function assert(c, msg) { if (!c) throw new Error(msg); }
async function shot(name) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}
async function test(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL - ${name}: ${e.stack || e.message}`);
    try { await shot(`fail-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`); } catch (x) { /* no page */ }
  }
}

// ---- page helpers ----
const sel = (title) => `article.card[aria-label=${JSON.stringify(title)}]`;
async function card(title, timeout = 5000) {
  return page.waitForSelector(sel(title), { timeout });
}
async function columnOf(title) {
  return page.$eval(sel(title), (el) => el.closest('[data-drop]').dataset.drop);
}
async function waitToast(text, timeout = 5000) {
  await page.waitForFunction((t) => [...document.querySelectorAll('.toast')].some((e) => e.textContent.includes(t)),
    { timeout }, text);
}
async function clickLabel(label, timeout = 5000) {
  const b = await page.waitForSelector(`[aria-label=${JSON.stringify(label)}]`, { timeout, visible: true });
  await b.click();
}
async function drag(title, status) {
  const c = await card(title);
  const from = await c.boundingBox();
  const col = await page.$(`[data-drop="${status}"] .col-body`);
  const to = await col.boundingBox();
  await page.mouse.move(from.x + 40, from.y + 12);
  await page.mouse.down();
  const tx = to.x + to.width / 2; const ty = to.y + 60;
  for (let i = 1; i <= 12; i++) {
    await page.mouse.move(from.x + 40 + ((tx - from.x - 40) * i) / 12, from.y + 12 + ((ty - from.y - 12) * i) / 12);
    await sleep(16);
  }
  await page.mouse.up();
}
async function task(id) { return suite.must(200, 'GET', `/api/v1/tasks/${id}`); }
async function signIn(p, user, pass) {
  await p.goto(`${base}/`);
  await p.waitForSelector('input[name=username]');
  await p.type('input[name=username]', user);
  await p.type('input[name=password]', pass);
  await Promise.all([p.waitForSelector('.topbar', { timeout: 10000 }), p.click('button[type=submit]')]);
}
async function openBoard(p, pid) {
  await p.goto(`${base}/#/p/${pid}`);
  await p.waitForSelector('[data-drop="todo"]');
  await p.waitForSelector('[data-live="live"]', { timeout: 10000 });
}

let project; const tasks = {};

async function main() {
  await suite.start();
  base = `http://127.0.0.1:${suite.ports.backend}`;
  browser = await puppeteer.launch({
    executablePath: CHROME, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--disable-dev-shm-usage',
      `--user-data-dir=${work}/chrome`],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 900 });
  page.on('pageerror', (e) => console.log(`  page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  console: ${m.text()}`); });

  await test('the backend serves the board with its types, caching and policy', async () => {
    const idx = await suite.api('GET', '/');
    assert(idx.status === 200 && idx.headers['content-type'].startsWith('text/html'), `GET /: ${idx.status} ${idx.headers['content-type']}`);
    assert(idx.headers['cache-control'] === 'no-cache', `index Cache-Control ${idx.headers['cache-control']}`);
    const csp = idx.headers['content-security-policy'] || '';
    assert(csp.includes("script-src 'self'") && csp.includes("default-src 'none'") && !csp.includes('unsafe-inline'), `CSP ${csp}`);
    const js = await suite.api('GET', '/app/main.js');
    assert(js.status === 200 && js.headers['content-type'].startsWith('text/javascript'), `main.js ${js.headers['content-type']}`);
    const again = await suite.api('GET', '/app/main.js', undefined, undefined, { 'If-None-Match': js.headers.etag });
    assert(again.status === 304, `revalidation: ${again.status}`);
    const v = await suite.api('GET', '/vendor/preact-10.29.8/preact.mjs');
    assert(v.status === 200 && /immutable/.test(v.headers['cache-control']), `vendor ${v.status} ${v.headers['cache-control']}`);
    for (const p of ['/app/..%2f..%2fMakefile', '/app/%2e%2e', '/vendor/..%2f..%2f..%2fetc/passwd', '/app/.hidden', '/vendor/preact-10.29.8/..', '/../Makefile', '/app/../../Makefile']) {
      const r = await suite.api('GET', p);
      assert(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert(!r.body.includes('CFLAGS') && !r.body.includes('root:'), `${p} leaked a file`);
    }
    const head = await suite.api('HEAD', '/');
    assert(head.status === 200 && head.body === '' && head.headers['content-type'].startsWith('text/html'), `HEAD /: ${head.status}`);
    const post = await suite.api('POST', '/app/main.js', '{}');
    assert(post.status === 405, `POST a file: ${post.status}`);
  });

  await test('sign in', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('input[name=username]');
    await shot('01-sign-in');
    await page.type('input[name=username]', 'admin');
    await page.type('input[name=password]', 'wrong-password');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.querySelector('[role=alert]')?.textContent.includes('do not match'));
    await page.$eval('input[name=password]', (e) => { e.value = ''; });
    await signIn(page, 'admin', ADMIN_PW);
    const stored = await page.evaluate(() => sessionStorage.getItem('vapora.session'));
    assert(stored && JSON.parse(stored).token, 'the token is in sessionStorage');
  });

  await test('create a project and tasks', async () => {
    await page.waitForSelector('form[aria-label="New project"]');
    await page.type('input[aria-label="New project name"]', 'Website relaunch');
    await page.type('input[aria-label="New project description"]', 'The new public site, from spec to launch');
    await page.click('form[aria-label="New project"] button');
    await page.waitForFunction(() => [...document.querySelectorAll('.project-card strong')].some((e) => e.textContent === 'Website relaunch'));
    const list = await suite.must(200, 'GET', '/api/v1/projects?limit=500');
    project = list.items.find((p) => p.name === 'Website relaunch');
    assert(project, 'the project is in the API');
    for (const [t, extra] of [['Plan the launch', { type: 'tech-debt', priority: 'low' }], ['Fix the login bug', { type: 'bugfix', priority: 'high' }],
      ['Design the landing page', { type: 'enhancement' }], ['Write the release notes', { priority: 'low' }]]) {
      tasks[t] = await suite.must(201, 'POST', `/api/v1/projects/${project.id}/tasks`, { title: t, ...extra });
    }
    await openBoard(page, project.id);
    await page.click('.toolbar .btn.primary');
    await page.waitForSelector('[role=dialog] input');
    await page.type('[role=dialog] input', 'Write the spec');
    await page.type('[role=dialog] textarea', 'What the **new site** must do, page by page.');
    await page.select('[role=dialog] select', 'feature');
    await page.click('[role=dialog] .btn.primary');
    await card('Write the spec');
    const b = await suite.must(200, 'GET', `/api/v1/projects/${project.id}/board`);
    const todo = b.columns.find((c) => c.status === 'todo').tasks;
    tasks['Write the spec'] = todo.find((t) => t.title === 'Write the spec');
    assert(tasks['Write the spec'], 'the task made in the page is in the API');
    await shot('02-projects-and-new-task');
  });

  await test('move a card by its button', async () => {
    await clickLabel('Move Write the spec to In progress');
    await page.waitForFunction((s) => document.querySelector(s)?.closest('[data-drop]').dataset.drop === 'in-progress', {}, sel('Write the spec'));
    await waitFor('the API status', async () => (await task(tasks['Write the spec'].id)).status === 'in-progress', 5000);
    // and by the menu
    await clickLabel('More moves for Fix the login bug');
    await clickLabel('Move Fix the login bug to In progress');
    await waitFor('the API status', async () => (await task(tasks['Fix the login bug'].id)).status === 'in-progress', 5000);
  });

  await test('move a card by a mouse drag', async () => {
    await drag('Write the spec', 'review');
    await waitFor('the API status', async () => (await task(tasks['Write the spec'].id)).status === 'review', 5000);
    assert(await columnOf('Write the spec') === 'review', 'the card is in Review');
  });

  await test('a move the status rules refuse snaps back and says why', async () => {
    await drag('Design the landing page', 'done');
    await waitToast('stays in To do');
    assert(await columnOf('Design the landing page') === 'todo', 'the card snapped back');
    assert((await task(tasks['Design the landing page'].id)).status === 'todo', 'the API status did not change');
    // A move the backend refuses (a blocker not done): snaps back with its reason.
    await suite.must(200, 'PATCH', `/api/v1/tasks/${tasks['Write the release notes'].id}`, { blocked_by: [tasks['Design the landing page'].id] });
    await page.waitForFunction((s) => document.querySelector(s)?.textContent.includes('blocked'), {}, sel('Write the release notes'));
    await drag('Write the release notes', 'in-progress');
    await waitToast('cannot move to In progress');
    await page.waitForFunction((s) => document.querySelector(s)?.closest('[data-drop]').dataset.drop === 'todo', {}, sel('Write the release notes'));
    await shot('03-board-refused-move');
  });

  await test('a change made through the API appears on the open board within a second', async () => {
    const t0 = Date.now();
    await suite.must(200, 'PATCH', `/api/v1/tasks/${tasks['Plan the launch'].id}`, { title: 'Plan the launch party', priority: 'high' });
    await card('Plan the launch party', 1000 - (Date.now() - t0) > 0 ? 1000 - (Date.now() - t0) : 1);
    facts.liveUpdateMs = Date.now() - t0;
    tasks['Plan the launch party'] = await task(tasks['Plan the launch'].id);
    const made = await suite.must(201, 'POST', `/api/v1/projects/${project.id}/tasks`, { title: 'Set up the CDN', type: 'enhancement' });
    tasks['Set up the CDN'] = made;
    await card('Set up the CDN', 1000);
  });

  await test('filters by text, type, priority and role; a soft column limit', async () => {
    await page.type('input[aria-label="Filter cards by text"]', 'landing');
    await page.waitForFunction(() => document.querySelectorAll('article.card').length === 1);
    await page.$eval('input[aria-label="Filter cards by text"]', (e) => { e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.select('select[aria-label="Filter by type"]', 'bugfix');
    await page.waitForFunction(() => [...document.querySelectorAll('article.card')].every((c) => c.textContent.includes('bugfix')));
    await page.select('select[aria-label="Filter by type"]', '');
    await page.select('select[aria-label="Filter by priority"]', 'low');
    await page.waitForFunction(() => document.querySelectorAll('article.card').length === 1);
    await page.select('select[aria-label="Filter by priority"]', '');
    await page.waitForFunction(() => document.querySelectorAll('article.card').length === 6);
    await clickLabel('Set the card limit of To do');
    await page.type('input[aria-label^="Card limit of To do"]', '2');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-drop="todo"].over .over-badge');
    assert(!(await page.$('[data-drop="in-progress"].over')), 'In progress is within its limit');
    await shot('04-board');
  });

  await test('keyboard: arrows move across cards and columns; names say what a control does', async () => {
    await page.focus(sel('Plan the launch party'));
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction((id) => document.activeElement.dataset.task && document.activeElement.dataset.task !== id,
      { timeout: 2000 }, String(tasks['Plan the launch party'].id));
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => document.activeElement.closest('[data-drop]')?.dataset.drop === 'in-progress', { timeout: 2000 });
    const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(ring !== 'none', 'the focused card shows its focus');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[role=dialog]');
    await page.waitForFunction(() => document.querySelector('[role=dialog]').contains(document.activeElement));
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('[role=dialog]'));
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, a, input, select, textarea')]
      .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || e.labels?.length || e.getAttribute('placeholder'))).length);
    assert(unnamed === 0, `${unnamed} controls have no name`);
    assert(await page.$('[aria-label="Move Design the landing page to In progress"]'), 'a move button names its card');
  });

  await test('a stale edit gets the conflict message', async () => {
    const t = tasks['Design the landing page'];
    await page.goto(`${base}/#/p/${project.id}/t/${t.id}`);
    await page.waitForSelector('[role=dialog] .detail input');
    // The page edits its copy; meanwhile someone else saves another version.
    await page.$eval('[role=dialog] .detail input', (e) => { e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.type('[role=dialog] .detail input', 'My own title');
    await suite.must(200, 'PATCH', `/api/v1/tasks/${t.id}`, { title: 'Design the landing page (v2)' }, undefined, { 'If-Match': String((await task(t.id)).version) });
    await sleep(300); // the live event reaches the page: an edited form is not replaced
    await page.click('[role=dialog] .detail .btn.primary');
    await waitToast('Someone else changed this task');
    const v = await page.$eval('[role=dialog] .detail input', (e) => e.value);
    assert(v === 'Design the landing page (v2)', `the form shows the other version: ${v}`);
    assert((await task(t.id)).title === 'Design the landing page (v2)', 'the stale edit was not saved');
    await shot('05-conflict');
    await page.keyboard.press('Escape');
  });

  await test('an XSS title and result stay text', async () => {
    const evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
    const t = await suite.must(201, 'POST', `/api/v1/projects/${project.id}/tasks`, { title: evil, description: `**bold** ${evil}` });
    await suite.must(200, 'PATCH', `/api/v1/tasks/${t.id}`, { result: { content: `# Done\n${evil}\n[click](javascript:window.__xss=3)`, agent: 'dev-a' } });
    const c = await card(evil);
    const text = await c.evaluate((e) => e.querySelector('.card-title').textContent);
    assert(text === evil, `the card shows the title as text: ${text}`);
    assert(!(await c.$('img, script')), 'no element came from the title');
    await page.goto(`${base}/#/p/${project.id}/t/${t.id}`);
    await page.waitForSelector('[data-result]');
    const res = await page.$eval('[data-result]', (e) => ({ text: e.textContent, tags: e.querySelectorAll('img, script, [onerror]').length, js: [...e.querySelectorAll('a')].filter((a) => /^javascript:/i.test(a.getAttribute('href') || '')).length }));
    assert(res.text.includes('<img src=x onerror=') && res.tags === 0 && res.js === 0, `the result is text: ${JSON.stringify(res)}`);
    assert(await page.evaluate(() => window.__xss === undefined), 'nothing ran');
    await page.keyboard.press('Escape');
    await suite.must(204, 'DELETE', `/api/v1/tasks/${t.id}`);
  });

  await test('assign a task, watch the agent\'s output stream in, accept it', async () => {
    const words = Array.from({ length: 24 }, (_, i) => `word${i}`).join(' ');
    await suite.fakeConfig('oai', { reply: `## Plan\n- ${words}\n\nThe **landing page** is designed.`, chunk_delay_ms: 120 });
    const t = tasks['Design the landing page'];
    await page.goto(`${base}/#/p/${project.id}/t/${t.id}`);
    await page.waitForSelector('[role=dialog] .assign select');
    await page.select('[role=dialog] .assign select', 'developer');
    await clickLabel('Assign Design the landing page (v2) to developer');
    await page.waitForSelector('[data-stream]', { timeout: 15000 });
    await page.waitForFunction(() => /word\d/.test(document.querySelector('[data-stream]')?.textContent || ''), { timeout: 15000 });
    const partial = await page.$eval('[data-stream]', (e) => e.textContent);
    assert(!partial.includes('word23'), 'the output arrived in pieces, not whole');
    await shot('06-task-agent-streaming');
    // The board shows the card with its agent at work.
    await page.keyboard.press('Escape');
    await page.waitForSelector(`${sel('Design the landing page (v2)')} .badge-run`, { timeout: 5000 });
    await shot('07-board-agent-working');
    await page.goto(`${base}/#/p/${project.id}/t/${t.id}`);
    await waitFor('the task in review', async () => (await task(t.id)).status === 'review', 30000);
    await page.waitForFunction(() => (document.querySelector('[data-result]')?.textContent || '').includes('is designed'), { timeout: 10000 });
    await page.waitForSelector('[aria-label="Accept Design the landing page (v2)"]', { timeout: 10000 });
    await page.waitForSelector('[data-result] h4', { timeout: 10000 }); // "## Plan", a heading inside the page
    await page.waitForFunction(() => document.querySelectorAll('.table.compact tbody tr').length >= 1);
    await shot('08-task-review');
    await clickLabel('Accept Design the landing page (v2)');
    await waitFor('the task done', async () => (await task(t.id)).status === 'done', 5000);
    await page.keyboard.press('Escape');
    // send back, with a note
    const u = tasks['Set up the CDN'];
    await suite.must(202, 'POST', `/api/v1/tasks/${u.id}/assign`, { role: 'developer' });
    await waitFor('the second task in review', async () => (await task(u.id)).status === 'review', 30000);
    await page.goto(`${base}/#/p/${project.id}/t/${u.id}`);
    await clickLabel('Send back Set up the CDN', 10000);
    await page.type('textarea[aria-label="Note for the agent: what should change"]', 'Use two regions, not one.');
    await clickLabel('Send Set up the CDN back to In progress');
    await waitFor('the task sent back', async () => { const x = await task(u.id); return x.status === 'in-progress' && x.description.includes('Use two regions'); }, 5000);
    await page.keyboard.press('Escape');
    await suite.fakeConfig('oai', { reply: null, chunk_delay_ms: 0 });
  });

  await test('killing the backend worker that holds the WebSocket: disconnected, then the board recovers with the change made meanwhile', async () => {
    await openBoard(page, project.id);
    await page.evaluate(() => { window.__loadsBefore = window.__boardLoads; });
    // Idle keep-alive connections close within 3 s (request_timeout): the
    // WebSocket is then the browser's only connection to a backend worker.
    const holder = await waitFor('one connection from the browser', async () => {
      const rows = suite.backendHolders();
      return rows.length === 1 ? rows[0] : null;
    }, 15000);
    process.kill(holder.pid, 'SIGKILL');
    const changed = await suite.must(200, 'PATCH', `/api/v1/tasks/${tasks['Fix the login bug'].id}`, { title: 'Fix the login bug on Safari' });
    assert(changed.title === 'Fix the login bug on Safari', 'changed meanwhile');
    await page.waitForSelector('[data-live="offline"]', { timeout: 5000 });
    await shot('09-board-disconnected');
    await page.waitForSelector('[data-live="live"]', { timeout: 20000 });
    await card('Fix the login bug on Safari', 5000);
    const loads = await page.evaluate(() => [window.__loadsBefore, window.__boardLoads]);
    assert(loads[1] > loads[0], `the board was read again after the reconnect (${loads})`);
  });

  await test('agents page: role, model, status, load, success and learning profiles', async () => {
    // More history: an architect's and a tester's run, accepted.
    const more = [['Design the API schema', 'architect', 'feature'], ['Write regression tests for login', 'tester', 'bugfix'],
      ['Review the architecture of the CDN', 'architect', 'enhancement']];
    const made = [];
    for (const [title, role, type] of more) {
      const t = await suite.must(201, 'POST', `/api/v1/projects/${project.id}/tasks`, { title, type });
      await suite.must(202, 'POST', `/api/v1/tasks/${t.id}/assign`, { role });
      made.push(t);
    }
    for (const t of made) {
      await waitFor(`${t.title} in review`, async () => (await task(t.id)).status === 'review', 30000);
      await suite.must(200, 'PATCH', `/api/v1/tasks/${t.id}`, { status: 'done' });
    }
    await page.goto(`${base}/#/agents`);
    await page.waitForSelector('.agent-card');
    await page.waitForFunction(() => document.querySelectorAll('.agent-card svg.chart').length >= 3, { timeout: 20000 });
    const n = await page.$$eval('.agent-card', (e) => e.length);
    assert(n === 4, `${n} agents shown`);
    await shot('10-agents');
  });

  await test('costs page: budgets and usage over time', async () => {
    await page.goto(`${base}/#/costs`);
    await page.waitForSelector('#budgets-h');
    await page.waitForFunction(() => document.querySelectorAll('.panel .table tbody tr').length >= 3);
    await page.waitForSelector('svg.chart', { timeout: 15000 });
    await shot('11-costs');
  });

  await test('workers page (owners): the supervisor\'s workers, refreshed live', async () => {
    await page.goto(`${base}/#/workers`);
    await page.waitForSelector('#svc-backend');
    const first = await page.$eval('.page-head p', (e) => e.textContent);
    await page.waitForFunction((f) => document.querySelector('.page-head p').textContent !== f, { timeout: 6000 }, first);
    const rows = await page.$$eval('.panel tbody tr', (e) => e.length);
    assert(rows >= 4, `${rows} rows`);
    await shot('12-workers');
  });

  let viewer;
  await test('a viewer sees no move controls and no workers', async () => {
    await suite.must(201, 'POST', '/api/v1/users', { username: 'vera', password: 'viewer-pw-1', role: 'viewer' });
    const ctx = await browser.createBrowserContext();
    viewer = await ctx.newPage();
    await viewer.setViewport({ width: 1280, height: 800 });
    await signIn(viewer, 'vera', 'viewer-pw-1');
    await openBoard(viewer, project.id);
    await viewer.waitForSelector('article.card');
    const n = await viewer.evaluate(() => document.querySelectorAll('[aria-label^="Move "], [aria-label^="More moves"], .toolbar .btn.primary, [aria-label^="Set the card limit"]').length);
    assert(n === 0, `${n} move controls for a viewer`);
    assert(!(await viewer.$('a[href="#/workers"]')), 'no Workers link');
    const c = await viewer.$(sel('Plan the launch party'));
    const from = await c.boundingBox();
    const to = await (await viewer.$('[data-drop="review"] .col-body')).boundingBox();
    await viewer.mouse.move(from.x + 40, from.y + 12); await viewer.mouse.down();
    await viewer.mouse.move(to.x + 50, to.y + 50, { steps: 8 }); await viewer.mouse.up();
    assert((await task(tasks['Plan the launch party'].id)).status === 'todo', 'a viewer cannot drag');
    await viewer.goto(`${base}/#/p/${project.id}/t/${tasks['Plan the launch party'].id}`);
    await viewer.waitForSelector('[role=dialog] .facts');
    assert(!(await viewer.$('[role=dialog] input:not([type=search]), [role=dialog] textarea, [role=dialog] .assign')), 'no edit form for a viewer');
    await viewer.screenshot({ path: path.join(OUT, '13-viewer-task.png') });
    const st = await suite.api('GET', '/api/v1/supervisor/status', undefined, await suite.login('vera', 'viewer-pw-1'));
    assert(st.status === 403, `a viewer asking the supervisor's status: ${st.status}`);
  });

  await test('an expired token brings the sign-in back', async () => {
    await viewer.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('vapora.session'));
      s.token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiZXhwIjoxfQ.AAAA';
      sessionStorage.setItem('vapora.session', JSON.stringify(s));
    });
    await viewer.goto(`${base}/#/p/${project.id}`);
    await viewer.reload();
    await viewer.waitForSelector('input[name=username]', { timeout: 10000 });
    await viewer.waitForFunction(() => document.querySelector('.toast')?.textContent.includes('Sign in again'));
    // and the clock: a session whose time is up signs out by itself
    await signIn(viewer, 'vera', 'viewer-pw-1');
    await viewer.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('vapora.session'));
      s.expires = Date.now() - 1;
      sessionStorage.setItem('vapora.session', JSON.stringify(s));
    });
    await viewer.reload();
    await viewer.waitForSelector('input[name=username]', { timeout: 10000 });
    await viewer.browserContext().close();
  });

  await test('rename and delete a project with the cascade confirmation', async () => {
    const p = await suite.must(201, 'POST', '/api/v1/projects', { name: 'Old experiments' });
    await suite.must(201, 'POST', `/api/v1/projects/${p.id}/tasks`, { title: 'A leftover task' });
    await page.goto(`${base}/#/projects`);
    await clickLabel('Rename Old experiments');
    await page.$eval('input[aria-label="New name for Old experiments"]', (e) => { e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.type('input[aria-label="New name for Old experiments"]', 'Archive 2025');
    await page.keyboard.press('Enter');
    await waitFor('renamed', async () => (await suite.must(200, 'GET', `/api/v1/projects/${p.id}`)).name === 'Archive 2025', 5000);
    await clickLabel('Delete Archive 2025');
    await page.click('[role=dialog] .btn.danger');
    await page.waitForFunction(() => document.querySelector('[role=dialog]')?.textContent.includes('still has tasks'));
    assert((await suite.api('GET', `/api/v1/projects/${p.id}`)).status === 200, 'not deleted before the confirmation');
    await page.type('[role=dialog] input', 'Archive 2025');
    await shot('14-delete-cascade');
    await page.click('[role=dialog] .btn.danger');
    await waitFor('deleted', async () => (await suite.api('GET', `/api/v1/projects/${p.id}`)).status === 404, 5000);
    await shot('15-projects');
  });

  await test('a board of 2,000 tasks renders in under a second', async () => {
    const big = await suite.must(201, 'POST', '/api/v1/projects', { name: 'Big board' });
    const kinds = ['feature', 'bugfix', 'enhancement', 'tech-debt'];
    const prios = ['high', 'medium', 'low'];
    for (let i = 0; i < 2000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => suite.must(201, 'POST', `/api/v1/projects/${big.id}/tasks`,
        { title: `Task ${i + k + 1}: ${['Refactor', 'Test', 'Document', 'Ship'][(i + k) % 4]} module ${(i + k) % 97}`, type: kinds[(i + k) % 4], priority: prios[(i + k) % 3], description: 'x'.repeat(200) })));
    }
    await page.goto(`${base}/#/projects`);
    await page.waitForSelector('.projects');
    await page.evaluate(() => { window.__boardTimings = null; });
    const t0 = Date.now();
    await page.evaluate((pid) => { location.hash = `#/p/${pid}`; }, big.id);
    await page.waitForFunction(() => document.querySelector('[data-drop="todo"] .col-count')?.dataset.count === '2000' && window.__boardTimings, { timeout: 30000 });
    const wall = Date.now() - t0;
    const tm = await page.evaluate(() => window.__boardTimings);
    const cards = await page.$$eval('article.card', (e) => e.length);
    facts.bigBoard = { wallMs: wall, fetchMs: Math.round(tm.fetchMs), renderMs: Math.round(tm.renderMs), cardsInDom: cards };
    console.log(`  2,000 cards: ${JSON.stringify(facts.bigBoard)}`);
    assert(tm.renderMs < 1000, `rendered in ${tm.renderMs} ms`);
    assert(cards < 200, `${cards} cards in the DOM: only the visible part is rendered`);
    // scrolling to the end shows the last cards
    await page.$eval('[data-drop="todo"] .col-body', (e) => { e.scrollTop = e.scrollHeight; });
    await page.waitForFunction(() => [...document.querySelectorAll('article.card')].some((c) => /^Task \d+/.test(c.getAttribute('aria-label')) && c.offsetTop > 200000));
    await page.$eval('[data-drop="todo"] .col-body', (e) => { e.scrollTop = 0; });
    await sleep(200);
    await shot('16-board-2000');
  });

  await test('first load: what the browser downloads', async () => {
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    await p.goto(`${base}/`, { waitUntil: 'networkidle0' });
    await p.waitForSelector('input[name=username]');
    const r = await p.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      return { files: res.length + 1, bytes: nav.encodedBodySize + res.reduce((s, e) => s + e.encodedBodySize, 0), names: res.map((e) => e.name.replace(location.origin, '')) };
    });
    facts.firstLoad = r;
    console.log(`  first load: ${r.files} files, ${r.bytes} bytes (${r.names.join(', ')})`);
    assert(r.bytes < 200 * 1024, `${r.bytes} bytes`);
    await ctx.close();
  });
}

let failed = false;
try {
  await main();
} catch (e) {
  console.log(`FAIL - the suite: ${e.stack || e.message}`);
  failed = true;
} finally {
  if (browser) await browser.close().catch(() => {});
  await suite.stop();
  if (results.some((r) => !r[1]) || failed) {
    for (const f of ['supervisor.log', 'fake.log']) {
      try { console.log(`--- ${f} (last lines)\n${fs.readFileSync(path.join(work, f), 'utf8').split('\n').slice(-40).join('\n')}`); } catch (e) { /* none */ }
    }
  }
  if (!process.env.VAPORA_TEST_KEEP) fs.rmSync(work, { recursive: true, force: true });
  fs.writeFileSync(path.join(OUT, 'facts.json'), JSON.stringify(facts, null, 2));
}
const passed = results.filter((r) => r[1]).length;
const nfailed = results.length - passed + (failed ? 1 : 0);
console.log(`ui: ${passed} passed, ${nfailed} failed`);
process.exit(nfailed ? 1 : 0);
