/* m2worker operator console: the browser side, one file for every page.
 *
 * Each HTML page names itself in <body data-page="...">; boot() (at the end)
 * runs PAGES[name]. The pages are static HTML skeletons holding the ids the
 * code fills in; everything dynamic is built here with DOM calls.
 *
 * Layout of this file:
 *   1. Helpers: el()/svg() build elements (never from HTML strings), and
 *      formatting of numbers, bytes, times, ages and durations.
 *   2. api(): the one door to the server. Sends the cookie and, for POST, the
 *      JSON body and the X-CSRF-Token header. 401 sends the browser to the
 *      login page (with ?next=), any other failure becomes an ApiError that
 *      carries the server's {"error": "..."} text.
 *   3. Page chrome: the #flash bar, the #confirm box (a promise: the console
 *      opens no browser dialogs), the header (#user, #logout),
 *      loadMe() (role and CSRF token), every() (polling that rests while the
 *      tab is hidden) and markReady() (body.dataset.ready for tests).
 *   4. Pages: login, overview (with the SVG charts), tasks, task, dead.
 *
 * Security: text from the server (payloads, errors, file names, keys, type
 * names) only ever reaches the DOM through textContent, createTextNode or
 * setAttribute on inert attributes; the only hrefs are /ui/ URLs built here
 * with URLSearchParams. No string is ever parsed as HTML here. The CSP forbids
 * inline script and style: looks come from app.css classes, and element.style
 * is used only for computed geometry (bar widths, tooltip position).
 * Viewers (role "viewer") get no action buttons: they are not built, and the
 * static ones (class "op") are removed.
 */
'use strict';

/* ---------- 1. helpers ---------- */

const $ = (sel, root) => (root || document).querySelector(sel);
const $$ = (sel, root) => Array.prototype.slice.call((root || document).querySelectorAll(sel));
const STATES = ['ready', 'scheduled', 'leased', 'waiting', 'done', 'dead', 'superseded'];
const SVGNS = 'http://www.w3.org/2000/svg';

function addKids(parent, kids) {
  for (const k of kids) {
    if (k == null || k === false) continue;
    if (Array.isArray(k)) addKids(parent, k);
    else parent.appendChild(typeof k === 'object' ? k : document.createTextNode(String(k)));
  }
  return parent;
}
function setKids(parent, ...kids) {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  return addKids(parent, kids);
}
function setAttrs(e, attrs) {
  if (!attrs) return e;
  for (const k of Object.keys(attrs)) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (/^on/i.test(k)) { if (typeof v === 'function') e.addEventListener(k.slice(2).toLowerCase(), v); continue; }
    if (k === 'class') e.setAttribute('class', v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  return e;
}
/* el('td', {class: 'num', title: s, onclick: f}, child, 'text', [more]) */
function el(tag, attrs, ...kids) { return addKids(setAttrs(document.createElement(tag), attrs), kids); }
function svg(tag, attrs, ...kids) { return addKids(setAttrs(document.createElementNS(SVGNS, tag), attrs), kids); }

const NUM = new Intl.NumberFormat('en-US');
const fmtNum = n => (n == null || n === '' ? '—' : NUM.format(n));
const pad = n => String(n).padStart(2, '0');
const plural = (n, word) => fmtNum(n) + ' ' + word + (n === 1 ? '' : 's');

function fmtTime(ms) {   /* "2026-12-04 10:14:40", local time */
  if (ms == null) return '—';
  const d = new Date(ms);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
    pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}
function fmtHM(ms) { const d = new Date(ms); return pad(d.getHours()) + ':' + pad(d.getMinutes()); }
function sameDay(a, b) { return new Date(a).toDateString() === new Date(b).toDateString(); }

function fmtRel(ms, now) {  /* "3 min ago", "in 2 h" */
  if (ms == null) return '';
  const diff = (now || Date.now()) - ms, a = Math.abs(diff);
  if (a < 5000) return 'just now';
  let v, u;
  if (a < 60e3) { v = Math.round(a / 1e3); u = 's'; }
  else if (a < 3600e3) { v = Math.round(a / 60e3); u = 'min'; }
  else if (a < 86400e3) { v = Math.round(a / 3600e3); u = 'h'; }
  else { v = Math.round(a / 86400e3); u = 'd'; }
  return diff >= 0 ? v + ' ' + u + ' ago' : 'in ' + v + ' ' + u;
}
function fmtAge(ms) {  /* "3 m 12 s" */
  if (ms == null || !isFinite(ms)) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + ' d ' + h + ' h';
  if (h) return h + ' h ' + m + ' m';
  if (m) return m + ' m ' + s + ' s';
  return s + ' s';
}
function fmtMs(ms) {  /* a duration: "120 ms", "1.5 s" */
  if (ms == null) return '—';
  return ms < 1000 ? NUM.format(Math.round(ms)) + ' ms' : (Math.round(ms / 100) / 10) + ' s';
}
function fmtBytes(n) {  /* "16 KiB", "4 GiB", "1.5 MiB" */
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (v >= 10 || i === 0 ? Math.round(v) : Math.round(v * 10) / 10) + ' ' + units[i];
}
function short(s, n) { s = String(s == null ? '' : s); return s.length > n ? s.slice(0, n) + '…' : s; }

/* A time with its relative age under it; the raw ms in the title. */
function timeBits(ms) {
  if (ms == null) return '—';
  return el('span', { class: 'when', title: String(ms) }, fmtTime(ms), ' ', el('small', { class: 'rel' }, fmtRel(ms)));
}
function badge(word, prefix) { return el('span', { class: 'badge ' + (prefix || 'st-') + String(word).replace(/[^a-z_-]/gi, '') }, word); }

/* ms <-> <input type=datetime-local> value, both in local time */
function toLocalInput(ms) {
  const d = new Date(ms);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes());
}
function fromLocalInput(v) { if (!v) return null; const t = new Date(v).getTime(); return isFinite(t) ? t : null; }

/* ---------- 2. api ---------- */

class ApiError extends Error {
  constructor(status, message, data) { super(message); this.status = status; this.data = data; }
}
const S = { me: null, csrf: '' };
let leaving = false;   /* set once we navigate away to the login page */

function toLogin() {
  if (leaving) return;
  leaving = true;
  location.href = '/ui/login?next=' + encodeURIComponent(location.pathname + location.search);
}

/* GET when body is undefined, else POST body as JSON with the CSRF token.
 * opt.csrf overrides the token, opt.noLoginRedirect keeps 401 as an error. */
async function api(url, body, opt) {
  opt = opt || {};
  const init = { method: body === undefined ? 'GET' : 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json', 'X-CSRF-Token': opt.csrf != null ? opt.csrf : S.csrf };
    init.body = JSON.stringify(body);
  }
  let res, data = null;
  try { res = await fetch(url, init); } catch (e) { throw new ApiError(0, 'Cannot reach m2worker: ' + e.message); }
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401 && !opt.noLoginRedirect) toLogin();
  if (res.ok && data !== null) return data;
  const msg = data && typeof data.error === 'string' ? data.error
    : res.ok ? 'Bad answer from m2worker (not JSON)' : ('HTTP ' + res.status + ' ' + res.statusText).trim();
  throw new ApiError(res.status, msg, data);
}

/* ---------- 3. page chrome ---------- */

let flashTimer = 0, flashTag = '';
/* kind "error" stays until dismissed or replaced; "ok" fades after 8 s.
 * tag lets a poller clear its own error once it succeeds again. */
function flash(text, kind, tag) {
  const f = $('#flash');
  if (!f) return;
  f.textContent = text;
  f.className = 'flash ' + (kind || 'error');
  flashTag = tag || '';
  clearTimeout(flashTimer);
  if (kind === 'ok') flashTimer = setTimeout(() => hideFlash(), 8000);
}
function hideFlash(tag) {
  if (tag && tag !== flashTag) return;
  const f = $('#flash');
  if (f) f.className = 'flash hidden';
}
function fail(err, tag) {
  if (leaving || (err && err.status === 401)) return;
  if (!(err instanceof ApiError)) console.error(err);
  flash(err && err.message ? err.message : String(err), 'error', tag);
}

/* In-page confirmation; resolves true on #confirm-yes. */
function confirmBox(text, yesLabel, danger) {
  const box = $('#confirm'), yes = $('#confirm-yes'), no = $('#confirm-no');
  $('#confirm-text').textContent = text;
  yes.textContent = yesLabel || 'Yes';
  yes.className = danger ? 'danger' : 'primary';
  box.classList.remove('hidden');
  no.focus();
  return new Promise(resolve => {
    const close = v => {
      box.classList.add('hidden');
      yes.onclick = no.onclick = box.onkeydown = null;
      resolve(v);
    };
    yes.onclick = () => close(true);
    no.onclick = () => close(false);
    box.onkeydown = e => { if (e.key === 'Escape') close(false); };
  });
}

const isOperator = () => !!(S.me && S.me.role === 'operator');

let meP = null;
function loadMe() {
  if (!meP) meP = api('/ui/api/me').then(me => { S.me = me; S.csrf = me.csrf; initHeader(me); return me; });
  return meP;
}
function initHeader(me) {
  const u = $('#user');
  if (u) u.textContent = me.user + ' (' + me.role + ')';
  const v = $('#version');
  if (v && me.version) v.textContent = me.version;
  if (!isOperator()) {
    document.body.classList.add('viewer');
    $$('.op').forEach(e => e.parentNode.removeChild(e));
  }
}
function initChrome() {
  const page = document.body.dataset.page;
  $$('nav a').forEach(a => a.classList.toggle('active', a.dataset.nav === page));
  const f = $('#flash');
  if (f) f.addEventListener('click', () => hideFlash());
  const lo = $('#logout');
  if (lo) lo.addEventListener('click', async () => {
    lo.disabled = true;
    try { await loadMe(); await api('/ui/api/logout', {}, { noLoginRedirect: true }); }
    catch (e) { if (e.status !== 401) { lo.disabled = false; fail(e); return; } }
    leaving = true;
    location.href = '/ui/login';
  });
}

/* Run fn now and then every ms; skipped while the tab is hidden, run at once
 * when it shows again. Returns the promise of the first run. */
function every(ms, fn) {
  let timer = 0;
  const tick = async () => {
    timer = 0;
    if (!document.hidden && !leaving) await fn();
    if (!leaving) timer = setTimeout(tick, ms);
  };
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && timer) { clearTimeout(timer); tick(); }
  });
  return tick();
}

function markReady() {
  if (document.body.dataset.ready === '1') return;
  window.m2wFirstRenderMs = performance.now();
  document.body.dataset.ready = '1';
}

/* Type names for a filter select: the current one at once, the rest from
 * the overview's stats when they come (the list does not wait for them). */
function fillTypes(select, current) {
  const add = t => { if (!$$('option', select).some(o => o.value === t)) select.appendChild(el('option', { value: t }, t)); };
  if (current && current !== 'any') add(current);
  select.value = current || 'any';
  api('/ui/api/overview').then(ov => ov.stats.types.forEach(t => add(t.type)), e => fail(e));
}

/* ---------- 4. pages ---------- */

const PAGES = {};

/* ----- login ----- */

function readCookie(name) {
  for (const part of document.cookie.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try { return decodeURIComponent(part.slice(i + 1).trim()); } catch (e) { return part.slice(i + 1).trim(); }
    }
  }
  return '';
}
function safeNext() {
  const n = new URLSearchParams(location.search).get('next') || '';
  return n.indexOf('/ui/') === 0 && n.indexOf('/ui/login') !== 0 ? n : '/ui/';
}

PAGES.login = function () {
  const form = $('#login-form'), err = $('#login-error'), btn = $('#login-submit');
  btn.disabled = false;   /* disabled in the HTML so nothing submits before this runs */
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.textContent = '';
    btn.disabled = true;
    try {
      await api('/ui/api/login', { user: form.elements.user.value, password: form.elements.password.value },
        { csrf: readCookie('m2w_login'), noLoginRedirect: true });
      leaving = true;
      location.href = safeNext();
    } catch (e) {
      err.textContent = e.message;
      btn.disabled = false;
      form.elements.password.select();
    }
  });
  form.elements.user.focus();
  markReady();
};

/* ----- overview ----- */

const CHARTS = {
  throughput: { series: [['done', 'done'], ['dead', 'dead']], fmt: fmtNum, legend: 'sum' },
  latency: { series: [['p50_ms', 'p50'], ['p99_ms', 'p99']], fmt: fmtMs, legend: 'last' },
};

PAGES.overview = function () {
  const ranges = { throughput: 'hour', latency: 'hour' };
  const hist = {};          /* range -> last /ui/api/history answer */
  const seen = {};          /* part -> JSON of what was last rendered */
  let ov = null;

  /* re-render a part only when its data changed: keeps focus and hover */
  const changed = (part, v) => { const j = JSON.stringify([v, S.me && S.me.role]); if (seen[part] === j) return false; seen[part] = j; return true; };

  async function pollOverview() {
    try {
      const r = await Promise.all([loadMe(), api('/ui/api/overview')]);
      ov = r[1];
      renderOverview(ov);
      hideFlash('overview');
    } catch (e) { fail(e, 'overview'); }
  }
  async function pollHistory() {
    const need = Object.keys(ranges).map(k => ranges[k]).filter((r, i, a) => a.indexOf(r) === i);
    try {
      const got = await Promise.all(need.map(r => api('/ui/api/history?range=' + r)));
      need.forEach((r, i) => { hist[r] = got[i]; });
      drawCharts();
      hideFlash('history');
    } catch (e) { fail(e, 'history'); }
  }

  function renderOverview(o) {
    const st = o.stats;
    const since = o.history_since != null ? o.history_since : (S.me && S.me.history_since);
    if (since != null) $('#history-since').textContent = 'History since ' +
      (sameDay(since, Date.now()) ? fmtHM(since) : fmtTime(since).slice(0, 16)) + ' (daemon start)';

    const bs = (o.breaker && o.breaker.state) || 'unknown';
    const b = $('#breaker');
    b.textContent = bs;
    b.className = 'value ' + ({ closed: 'good', open: 'bad', 'half-open': 'warn' }[bs] || '');
    const extra = Object.keys(o.breaker || {}).filter(k => k !== 'state')
      .map(k => {
        const v = o.breaker[k], when = /_ms$/.test(k) && typeof v === 'number' && v > 1e12;
        return k.replace(/_ms$/, '').replace(/_/g, ' ') + ' ' + (when ? fmtTime(v).slice(11) + ' (' + fmtRel(v) + ')' : String(v));
      });
    $('#breaker-detail').textContent = extra.join(', ');

    $('#oldest-ready').textContent = st.totals.ready ? fmtAge(st.oldest_ready_age_ms) : '—';

    const max = st.map_max || st.map_size, pct = max ? (100 * st.map_used / max) : 0;
    const fill = el('div', { class: 'fill' + (pct > 95 ? ' bad' : pct > 80 ? ' warn' : '') });
    fill.style.width = Math.min(100, pct) + '%';
    setKids($('#store-use'), el('span', null, fmtBytes(st.map_used) + ' of ' + fmtBytes(max) + ' (' + pct.toFixed(1) + '%)'),
      el('div', { class: 'bar', title: fmtNum(st.map_used) + ' bytes' }, fill));
    $('#store-detail').textContent = 'map ' + fmtBytes(st.map_size) + (st.events ? ' · events waiting ' + fmtNum(st.events_waiting) : '');

    $('#disk-free').textContent = o.disk_free == null ? '—' : fmtBytes(o.disk_free);
    $('#workers').textContent = fmtNum(o.workers);
    const lim = o.limiter;
    $('#workers-sub').textContent = lim
      ? 'threads; calls in flight ' + lim.inflight + ' of ' + lim.limit +
        (lim.mode === 'auto' ? ' (auto)' : '')
      : 'threads calling Magento';

    if (changed('links', o.links)) {
      setKids($('#links'), (o.links || []).length ? o.links.map(l => el('li', { class: 'link ' + (l.state === 'up' ? 'up' : 'down') },
        el('span', { class: 'dot' }), el('span', { class: 'name' }, l.name), ' ', el('span', { class: 'state' }, l.state),
        l.detail ? el('small', { class: 'detail', title: l.detail }, ' ' + l.detail) : null)) : el('li', { class: 'muted' }, 'none'));
    }

    const pa = $('#pause-all');
    if (pa) { pa.textContent = st.paused_all ? 'Resume all' : 'Pause all'; pa.classList.toggle('active', !!st.paused_all); }
    if (changed('counts', [st.types, st.totals, st.paused_all])) renderCounts(st);
    if (changed('watch', o.watch)) renderWatch(o.watch || []);
  }

  function renderCounts(st) {
    const op = isOperator();
    const row = (type, counts, paused, pausedText) => {
      const all = type === '*';
      return el('tr', { class: paused ? 'paused' : null },
        el('th', { scope: 'row' }, all ? 'all types' : type, paused ? el('span', { class: 'badge paused' }, pausedText || 'paused') : null),
        STATES.map(s => {
          const n = (counts && counts[s]) || 0;
          const td = el('td', { class: 'num' + (n ? ' n-' + s : ' zero'), 'data-type': type, 'data-state': s });
          if (!n) td.textContent = '0';
          else {
            const q = new URLSearchParams({ state: s });
            if (!all) q.set('type', type);
            td.appendChild(el('a', { href: '/ui/tasks?' + q }, fmtNum(n)));
          }
          return td;
        }),
        op ? el('td', { class: 'act' }, all ? null : el('button', {
          type: 'button', class: 'small', 'data-action': 'pause', 'data-type': type,
          onclick: ev => setPaused(ev.currentTarget, type, !paused),
        }, paused ? 'Resume' : 'Pause')) : null);
    };
    setKids($('#counts'),
      el('thead', null, el('tr', null, el('th', null, 'type'), STATES.map(s => el('th', { class: 'num' }, s)), op ? el('th', null) : null)),
      el('tbody', null, st.types.length ? st.types.map(t => row(t.type, t.counts, t.paused)) :
        el('tr', null, el('td', { class: 'muted', colspan: STATES.length + 2 }, 'No task types yet.'))),
      el('tfoot', null, row('*', st.totals, st.paused_all, 'all paused')));
  }

  async function setPaused(btn, type, paused) {
    if (btn) btn.disabled = true;
    try {
      await api('/ui/api/pause', { type: type, paused: paused });
      flash((paused ? 'Paused ' : 'Resumed ') + (type == null ? 'everything' : type), 'ok');
      await pollOverview();
    } catch (e) { fail(e); }
    if (btn) btn.disabled = false;
  }

  function renderWatch(watch) {
    const box = $('#watch');
    if (!watch.length) { setKids(box, el('p', { class: 'muted' }, 'No watched directories.')); return; }
    const head = ['time', 'file', 'outcome', 'rows', 'accepted', 'duplicates', 'rejected', 'errors file'];
    setKids(box, watch.map(w => el('section', { class: 'watch' },
      el('h3', null, w.name, ' ', el('code', null, w.path)),
      !(w.files || []).length ? el('p', { class: 'muted' }, 'No files yet.') :
        el('div', { class: 'scroll' }, el('table', { class: 'grid' },
          el('thead', null, el('tr', null, head.map((h, i) => el('th', { class: i >= 3 && i <= 6 ? 'num' : null }, h)))),
          el('tbody', null, w.files.map(f => el('tr', null,
            el('td', { class: 'nowrap' }, timeBits(f.at_ms)),
            el('td', { class: 'path', title: f.moved_to ? 'moved to ' + f.moved_to : null }, f.name),
            el('td', null, badge(f.outcome, 'out-'), f.reason ? el('span', { class: 'reason' }, ' ' + f.reason) : null),
            el('td', { class: 'num' }, fmtNum(f.rows)),
            el('td', { class: 'num' }, fmtNum(f.accepted)),
            el('td', { class: 'num' }, fmtNum(f.duplicates)),
            el('td', { class: 'num' + (f.rejected ? ' n-dead' : '') }, fmtNum(f.rejected)),
            el('td', { class: 'path' }, f.errors_file ? el('code', null, f.errors_file) : '—')))))))));
  }

  /* -- charts: inline SVG, one point per minute, nulls (daemon not running) drawn as gaps -- */

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function drawCharts() { Object.keys(CHARTS).forEach(drawChart); }

  function drawChart(name) {
    const cfg = CHARTS[name], box = $('#chart-' + name), data = hist[ranges[name]];
    $$('button[data-range]', box).forEach(b => {
      const on = b.dataset.range === ranges[name];
      b.classList.toggle('active', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    });
    const plot = $('.plot', box), legend = $('.legend', box);
    if (!data) { setKids(plot, el('p', { class: 'muted' }, 'loading…')); return; }

    const n = data[cfg.series[0][0]].length, step = data.step_ms || 60000;
    const W = Math.max(280, plot.clientWidth || 560), H = 190, L = 52, R = 12, T = 10, B = 22;
    const xs = i => L + (n > 1 ? i * (W - L - R) / (n - 1) : 0);
    let top = 0;
    cfg.series.forEach(s => data[s[0]].forEach(v => { if (v != null && v > top) top = v; }));
    top = niceMax(top);
    const ys = v => T + (H - T - B) * (1 - v / top);

    const g = svg('svg', { class: 'chart-svg', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img',
      'aria-label': name + ' per minute, last ' + ranges[name] });
    [0, 0.5, 1].forEach(f => {
      const y = ys(top * f);
      g.appendChild(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y, y2: y }));
      g.appendChild(svg('text', { class: 'ylab', x: L - 6, y: y + 4 }, cfg.fmt(top * f)));
    });
    /* x ticks on round local times: every 10 min (hour) or 3 h (day) */
    const day = n > 120;
    for (let i = 0; i < n; i++) {
      const d = new Date(data.start + i * step);
      if (d.getMinutes() % (day ? 60 : 10) || (day && d.getHours() % 3)) continue;
      const x = xs(i);
      g.appendChild(svg('line', { class: 'tick', x1: x, x2: x, y1: H - B, y2: H - B + 4 }));
      g.appendChild(svg('text', { class: 'xlab', x: x, y: H - 6 }, fmtHM(d.getTime())));
    }
    g.appendChild(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    if (data.since > data.start) {
      const x = xs(Math.min(n - 1, (data.since - data.start) / step));
      g.appendChild(svg('line', { class: 'since', x1: x, x2: x, y1: T, y2: H - B }, svg('title', null, 'daemon start ' + fmtTime(data.since))));
    }
    cfg.series.forEach(s => {
      const vals = data[s[0]];
      let d = '';
      for (let i = 0; i < n; i++) {
        if (vals[i] == null) continue;
        const alone = (i === 0 || vals[i - 1] == null);
        d += (alone ? 'M' : 'L') + xs(i).toFixed(1) + ' ' + ys(vals[i]).toFixed(1);
        if (alone && (i === n - 1 || vals[i + 1] == null)) d += 'h0.1';   /* a lone point still shows */
      }
      if (d) g.appendChild(svg('path', { class: 'line s-' + s[1], d: d }));
    });

    /* hover: a guide line and a tooltip with the exact values of that minute */
    const guide = svg('line', { class: 'guide hidden', y1: T, y2: H - B });
    const tip = el('div', { class: 'tip hidden' });
    g.appendChild(guide);
    g.appendChild(svg('rect', { class: 'hit', x: L, y: T, width: W - L - R, height: H - T - B }));
    g.addEventListener('mousemove', ev => {
      const r = g.getBoundingClientRect();
      const i = Math.round((ev.clientX - r.left - L) / ((W - L - R) / Math.max(1, n - 1)));
      if (i < 0 || i >= n) { guide.classList.add('hidden'); tip.classList.add('hidden'); return; }
      const x = xs(i), t = data.start + i * step, off = t + step <= data.since;
      guide.setAttribute('x1', x); guide.setAttribute('x2', x);
      guide.classList.remove('hidden');
      setKids(tip, el('div', { class: 'tip-t' }, fmtTime(t).slice(0, 16) + (i === n - 1 ? ' (this minute)' : '')),
        off ? el('div', null, 'daemon not running') : cfg.series.map(s => el('div', null, el('span', { class: 'sw s-' + s[1] }),
          s[1] + ': ' + (data[s[0]][i] == null ? '—' : cfg.fmt(data[s[0]][i])))));
      tip.classList.remove('hidden');
      tip.style.left = (x > W - 170 ? x - 160 : x + 10) + 'px';
      tip.style.top = T + 'px';
    });
    g.addEventListener('mouseleave', () => { guide.classList.add('hidden'); tip.classList.add('hidden'); });
    setKids(plot, g, tip);

    setKids(legend, cfg.series.map(s => {
      const vals = data[s[0]].filter(v => v != null);
      const v = cfg.legend === 'sum' ? vals.reduce((a, b) => a + b, 0) : vals[vals.length - 1];
      return el('span', { class: 'item' }, el('span', { class: 'sw s-' + s[1] }), s[1] + ' ', el('b', null, v == null ? '—' : cfg.fmt(v)));
    }), el('span', { class: 'muted' }, cfg.legend === 'sum' ? 'total' : 'latest'));
  }

  /* wiring */
  const pa = $('#pause-all');
  if (pa) pa.addEventListener('click', () => { if (ov) setPaused(pa, null, !ov.stats.paused_all); });
  Object.keys(CHARTS).forEach(name => {
    $$('#chart-' + name + ' button[data-range]').forEach(b => b.addEventListener('click', async () => {
      ranges[name] = b.dataset.range;
      drawChart(name);
      try { hist[ranges[name]] = await api('/ui/api/history?range=' + ranges[name]); drawChart(name); }
      catch (e) { fail(e, 'history'); }
    }));
  });
  /* redraw at the new width when a plot's box changes (window, scrollbar) */
  let resizeTimer = 0;
  const redraw = () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawCharts, 120); };
  if (window.ResizeObserver) {
    const ro = new ResizeObserver(entries => {
      if (entries.some(en => { const svgEl = $('svg', en.target); return svgEl && Math.abs(+svgEl.getAttribute('width') - Math.max(280, en.target.clientWidth)) > 2; })) redraw();
    });
    $$('.chart .plot').forEach(p => ro.observe(p));
  } else window.addEventListener('resize', redraw);

  drawCharts();
  Promise.all([every(2000, pollOverview), every(30000, pollHistory)]).then(markReady, markReady);
};

/* ----- tasks ----- */

PAGES.tasks = function () {
  const form = $('#filter'), table = $('#tasks');
  const p = new URLSearchParams(location.search);
  const selected = new Set();
  let back = [], cur = '', next = null, rows = [];

  const f = form.elements;
  f.state.value = STATES.indexOf(p.get('state')) >= 0 ? p.get('state') : 'dead';
  f.q.value = p.get('q') || '';
  if (+p.get('since')) f.since.value = toLocalInput(+p.get('since'));
  if (+p.get('until')) f.until.value = toLocalInput(+p.get('until'));
  fillTypes(f.type, p.get('type') || 'any');

  function filters() {
    const q = new URLSearchParams({ state: f.state.value });
    if (f.type.value && f.type.value !== 'any') q.set('type', f.type.value);
    if (f.q.value.trim()) q.set('q', f.q.value.trim());
    const since = fromLocalInput(f.since.value), until = fromLocalInput(f.until.value);
    if (since != null) q.set('since', since);
    if (until != null) q.set('until', until);
    return q;
  }

  async function load() {
    const q = filters();
    history.replaceState(null, '', location.pathname + '?' + q);
    if (cur) q.set('after', cur);
    q.set('limit', '50');
    try {
      const r = await Promise.all([loadMe(), api('/ui/api/tasks?' + q)]);
      rows = r[1].tasks || [];
      next = r[1].next || null;
      selected.clear();
      render();
      hideFlash('list');
    } catch (e) {
      rows = []; next = null;
      render('Could not load the list.');
      fail(e, 'list');
    }
  }

  function render(empty) {
    const op = isOperator();
    const all = op ? el('input', { type: 'checkbox', 'aria-label': 'select all on this page' }) : null;
    if (all) all.addEventListener('change', () => {
      rows.forEach(t => { if (all.checked) selected.add(t.id); else selected.delete(t.id); });
      $$('tbody input[type=checkbox]', table).forEach(c => { c.checked = all.checked; });
      updateBulk();
    });
    const heads = ['id', 'type', 'state', 'attempts', 'updated', 'last status', 'last error', 'source', 'key'];
    setKids(table,
      el('thead', null, el('tr', null, op ? el('th', { class: 'sel' }, all) : null,
        heads.map(h => el('th', { class: 'c-' + h.replace(' ', '-') + (h === 'id' || h === 'attempts' || h === 'last status' ? ' num' : '') }, h)))),
      el('tbody', null, rows.length ? rows.map(t => taskRow(t, op)) :
        el('tr', null, el('td', { class: 'muted empty', colspan: heads.length + (op ? 1 : 0) }, empty || 'No tasks match these filters.'))));
    $('#page-info').textContent = 'page ' + (back.length + 1) + ' · ' + plural(rows.length, 'task');
    $('#prev-page').disabled = !back.length;
    $('#next-page').disabled = !next;
    updateBulk();
  }

  function taskRow(t, op) {
    let cb = null;
    if (op) {
      cb = el('input', { type: 'checkbox', 'aria-label': 'select task ' + t.id });
      cb.addEventListener('change', () => { if (cb.checked) selected.add(t.id); else selected.delete(t.id); updateBulk(); });
    }
    const keyTitle = [t.idempotency_key && 'idempotency: ' + t.idempotency_key, t.ordering_key && 'ordering: ' + t.ordering_key].filter(Boolean).join('\n');
    return el('tr', { 'data-id': t.id },
      op ? el('td', { class: 'sel' }, cb) : null,
      el('td', { class: 'num' }, el('a', { href: '/ui/task?id=' + encodeURIComponent(t.id) }, String(t.id))),
      el('td', null, t.type),
      el('td', null, badge(t.state)),
      el('td', { class: 'num' }, t.max_attempts ? t.attempts + '/' + t.max_attempts : String(t.attempts)),
      el('td', { class: 'nowrap' }, timeBits(t.updated_ms)),
      el('td', { class: 'num' }, t.last_status == null ? '—' : String(t.last_status)),
      el('td', { class: 'clip err', title: t.last_error || null }, t.last_error || ''),
      el('td', { class: 'clip src', title: t.source || null }, el('span', null, t.source || '')),
      el('td', { class: 'clip key', title: keyTitle || null }, t.idempotency_key || t.ordering_key || ''));
  }

  function updateBulk() {
    const bulk = $('#bulk');
    if (!bulk) return;
    bulk.classList.toggle('hidden', selected.size === 0);
    $('#bulk-count').textContent = plural(selected.size, 'task') + ' selected';
  }

  const ACTIONS = {
    requeue: { url: '/ui/api/requeue', ask: n => 'Requeue ' + plural(n, 'task') + '?', yes: 'Requeue', done: 'Requeued ' },
    retry: { url: '/ui/api/retry-now', ask: n => 'Retry ' + plural(n, 'task') + ' now?', yes: 'Retry now', done: 'Retried ' },
    delete: { url: '/ui/api/delete', ask: n => 'Delete ' + plural(n, 'task') + '? This cannot be undone.', yes: 'Delete', done: 'Deleted ', danger: true },
  };
  async function bulk(kind) {
    const a = ACTIONS[kind], ids = Array.from(selected);
    if (!ids.length || !await confirmBox(a.ask(ids.length), a.yes, a.danger)) return;
    try {
      const r = await api(a.url, { ids: ids });
      await load();
      flash(a.done + fmtNum(r.count), 'ok');
    } catch (e) { fail(e); }
  }

  form.addEventListener('submit', ev => { ev.preventDefault(); back = []; cur = ''; load(); });
  $('#next-page').addEventListener('click', () => { if (!next) return; back.push(cur); cur = next; load(); });
  $('#prev-page').addEventListener('click', () => { if (!back.length) return; cur = back.pop(); load(); });
  $('#refresh').addEventListener('click', () => load());
  [['#bulk-requeue', 'requeue'], ['#bulk-retry', 'retry'], ['#bulk-delete', 'delete']].forEach(b => {
    const btn = $(b[0]);
    if (btn) btn.addEventListener('click', () => bulk(b[1]));
  });

  load().then(markReady, markReady);
};

/* ----- task ----- */

PAGES.task = function () {
  const id = new URLSearchParams(location.search).get('id') || '';
  $('#task-id').textContent = id;

  function value(k, v) {
    if (v == null) return el('span', { class: 'muted' }, '—');
    if (/_ms$/.test(k) && typeof v === 'number') return timeBits(v);
    if (k === 'state') return badge(v);
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'object') return el('code', null, JSON.stringify(v));
    if (k === 'last_error') return el('span', { class: 'prewrap' }, String(v));
    return String(v);
  }

  function render(t) {
    document.title = 'm2worker — task ' + t.id;
    $('#task-id').textContent = String(t.id);
    setKids($('#task-state'), badge(t.state));
    const bq = new URLSearchParams({ state: t.state, type: t.type });
    $('#back').setAttribute('href', '/ui/tasks?' + bq);
    setKids($('#fields'), Object.keys(t).filter(k => k !== 'payload' && k !== 'history')
      .map(k => [el('dt', null, k), el('dd', { 'data-field': k }, value(k, t[k]))]));

    const src = t.source || '', m = /^(.*):(\d+)$/.exec(src);
    setKids($('#source'), !src ? el('span', { class: 'muted' }, '—') : m ?
      [el('span', { class: 'muted' }, 'file '), el('code', null, m[1]), el('span', { class: 'muted' }, ' line '), el('b', null, m[2])] : el('code', null, src));
    $('#payload').textContent = t.payload === undefined ? '—' : JSON.stringify(t.payload, null, 2);

    const h = t.history || [];
    setKids($('#history'),
      el('thead', null, el('tr', null, ['attempt', 'ended', 'duration', 'HTTP status', 'outcome', 'message']
        .map((x, i) => el('th', { class: i === 0 || i === 2 || i === 3 ? 'num' : null }, x)))),
      el('tbody', null, h.length ? h.map(a => el('tr', null,
        el('td', { class: 'num' }, fmtNum(a.attempt)),
        el('td', { class: 'nowrap' }, timeBits(a.at_ms)),
        el('td', { class: 'num' }, fmtMs(a.duration_ms)),
        el('td', { class: 'num' }, a.http_status == null ? '—' : String(a.http_status)),
        el('td', null, badge(a.outcome || '?', 'out-')),
        el('td', { class: 'msg' }, a.message == null ? '' : String(a.message)))) :
        el('tr', null, el('td', { class: 'muted', colspan: 6 }, 'No attempts yet.'))));

    const box = $('#actions');
    if (!box) return;
    const acts = [];
    if (['dead', 'superseded', 'done'].indexOf(t.state) >= 0)
      acts.push(['requeue', 'Requeue', '/ui/api/requeue', 'Requeue task ' + t.id + '?', 'Requeued ']);
    if (['ready', 'scheduled'].indexOf(t.state) >= 0)
      acts.push(['retry-now', 'Retry now', '/ui/api/retry-now', 'Retry task ' + t.id + ' now?', 'Retried ']);
    if (t.state !== 'leased')
      acts.push(['delete', 'Delete', '/ui/api/delete', 'Delete task ' + t.id + '? This cannot be undone.', 'Deleted ']);
    setKids(box, acts.map(a => el('button', {
      id: a[0], type: 'button', class: a[0] === 'delete' ? 'danger' : null,
      onclick: async () => {
        if (!await confirmBox(a[3], a[1], a[0] === 'delete')) return;
        try {
          const body = { ids: [t.id] };
          /* a done or superseded task again: `qctl requeue --force ID` */
          if (a[0] === 'requeue' && t.state !== 'dead') body.force = true;
          const r = await api(a[2], body);
          await load(a[4] + plural(r.count, 'task'));
        } catch (e) { fail(e); }
      },
    }, a[1])));
  }

  /* after an action, okText is flashed; a 404 then means the task is gone */
  async function load(okText) {
    try {
      const r = await Promise.all([loadMe(), api('/ui/api/tasks/' + encodeURIComponent(id))]);
      render(r[1]);
      if (okText) flash(okText, 'ok'); else hideFlash();
    } catch (e) {
      if (e.status === 404 && okText) {
        flash(okText, 'ok');
        $$('#actions button').forEach(b => b.parentNode.removeChild(b));
        setKids($('#task-state'), badge('deleted'));
      } else fail(e);
    }
  }

  if (!/^\d+$/.test(id)) { flash('No task id in the address (expected /ui/task?id=N)', 'error'); markReady(); return; }
  load().then(markReady, markReady);
};

/* ----- dead letters ----- */

PAGES.dead = function () {
  const form = $('#dead-filter'), f = form.elements;
  const p = new URLSearchParams(location.search);
  const SINCE = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
  f.since.value = SINCE[p.get('since')] ? p.get('since') : 'any';
  fillTypes(f.type, p.get('type') || 'any');

  async function load() {
    const url = new URLSearchParams(), q = new URLSearchParams();
    if (f.type.value && f.type.value !== 'any') { url.set('type', f.type.value); q.set('type', f.type.value); }
    if (SINCE[f.since.value]) { url.set('since', f.since.value); q.set('since', Date.now() - SINCE[f.since.value]); }
    history.replaceState(null, '', location.pathname + (String(url) ? '?' + url : ''));
    try {
      const r = await Promise.all([loadMe(), api('/ui/api/dead-groups' + (String(q) ? '?' + q : ''))]);
      render(r[1]);
      hideFlash('groups');
    } catch (e) {
      render({ groups: [], scanned: null }, 'Could not load the dead letters.');
      fail(e, 'groups');
    }
  }

  function render(d, empty) {
    const op = isOperator(), groups = d.groups || [];
    setKids($('#groups'),
      el('thead', null, el('tr', null, el('th', { class: 'num' }, 'count'), el('th', null, 'type'), el('th', { class: 'num' }, 'status'),
        el('th', null, 'error'), el('th', null, 'last seen'), el('th', null))),
      el('tbody', null, groups.length ? groups.map(g => {
        const show = new URLSearchParams({ state: 'dead', type: g.type, q: String(g.error || '').slice(0, 60) });
        return el('tr', { class: 'group' },
          el('td', { class: 'count num' }, fmtNum(g.count)),
          el('td', { class: 'type' }, g.type),
          el('td', { class: 'status num' }, g.last_status == null ? '—' : String(g.last_status)),
          el('td', { class: 'error' }, g.error == null ? '' : String(g.error)),
          el('td', { class: 'last nowrap', title: 'first seen ' + fmtTime(g.first_ms) }, timeBits(g.last_ms)),
          el('td', { class: 'acts nowrap' },
            el('a', { class: 'show', href: '/ui/tasks?' + show }, 'show'),
            g.example_id != null ? [' · ', el('a', { class: 'example', href: '/ui/task?id=' + encodeURIComponent(g.example_id) }, 'example')] : null,
            op ? [' ', el('button', { type: 'button', class: 'small requeue-group', onclick: ev => groupAction(ev.currentTarget, g, 'requeue') }, 'Requeue all'),
              ' ', el('button', { type: 'button', class: 'small danger delete-group', onclick: ev => groupAction(ev.currentTarget, g, 'delete') }, 'Delete all')] : null));
      }) : el('tr', null, el('td', { class: 'muted empty', colspan: 6 }, empty || 'No dead letters.'))));
    $('#scanned').textContent = d.scanned == null ? '' : 'scanned ' + plural(d.scanned, 'dead task');
  }

  /* count with dry_run first, confirm with that count, then do it */
  async function groupAction(btn, g, kind) {
    const del = kind === 'delete', url = del ? '/ui/api/delete' : '/ui/api/requeue', verb = del ? 'Delete' : 'Requeue';
    const body = { type: g.type, error: g.error };
    btn.disabled = true;
    try {
      const n = (await api(url, Object.assign({ dry_run: true }, body))).count;
      btn.disabled = false;
      if (!n) { flash('No ' + g.type + ' task fails with that error any more.', 'ok'); await load(); return; }
      if (!await confirmBox(verb + ' ' + plural(n, 'task') + ' of ' + g.type + ' failing with “' + short(g.error, 200) + '”?', verb, del)) return;
      const r = await api(url, body);
      await load();
      flash((del ? 'Deleted ' : 'Requeued ') + fmtNum(r.count), 'ok');
    } catch (e) { btn.disabled = false; fail(e); }
  }

  form.addEventListener('change', load);
  form.addEventListener('submit', ev => { ev.preventDefault(); load(); });
  $('#refresh').addEventListener('click', () => load());
  load().then(markReady, markReady);
};

/* ---------- boot ---------- */

function boot() {
  const page = document.body.dataset.page;
  if (page !== 'login') {
    initChrome();
    loadMe().catch(e => fail(e));
  }
  if (PAGES[page]) PAGES[page]();
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
