// kvmesh web UI: plain JavaScript against the JSON API that nginx proxies to Envoy (/kv family).
'use strict';

const GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const HTTP_TITLES = { 400: 'Invalid request', 401: 'Token needed', 403: 'Not allowed', 404: 'Not found', 409: 'Conflict', 413: 'Too large', 429: 'Too many requests',
  499: 'Cancelled', 500: 'Server error', 501: 'Not implemented', 502: 'Edge proxy unreachable', 503: 'Service unavailable',
  504: 'Timed out' };

const $ = (id) => document.getElementById(id);

/** An API error with what the server said: HTTP status, gRPC code name, message, details. */
class ApiError extends Error {
  constructor(status, body) {
    const code = typeof body.code === 'number' && body.code < GRPC_CODES.length && body.code !== status ? GRPC_CODES[body.code] : '';
    super(body.message || `HTTP ${status}`);
    this.status = status; this.code = code; this.details = Array.isArray(body.details) ? body.details : [];
  }
}

// Every write carries an Idempotency-Key, and a write whose answer was lost (no connection, 502/503/504) is sent
// again with the same key: the server applies it once, and the retry answers with the first one's outcome.
const WRITE_ATTEMPTS = 3;

function newRequestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, '0')).join('');
}

// With auth on, every call carries the API token the user pasted (kept in this browser's localStorage only).
const TOKEN_KEY = 'kvmesh.token';
function token() { try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; } }
function withToken(headers) {
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  return headers;
}

async function api(method, path, body) {
  const write = method === 'PUT' || method === 'DELETE';
  const headers = withToken({ Accept: 'application/json' });
  if (body) headers['Content-Type'] = 'application/json';
  if (write) headers['Idempotency-Key'] = newRequestId();
  let res;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
      if (!(write && [502, 503, 504].includes(res.status) && attempt < WRITE_ATTEMPTS)) break;
    } catch (e) {
      if (!write || attempt >= WRITE_ATTEMPTS) throw new ApiError(0, { message: 'cannot reach the server (' + e.message + ')' });
    }
    await new Promise(r => setTimeout(r, 250 * attempt));
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : {}; } catch { json = null; }
  if (!res.ok) throw new ApiError(res.status, json && typeof json === 'object' ? json : { message: text.trim() || res.statusText });
  if (json === null) throw new ApiError(res.status, { message: 'the server answered with something that is not JSON' });
  return json;
}

// ---------------------------------------------------------------- rendering helpers

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) + ' (' + iso + ')';
}

function fields(pairs) {
  const dl = el('dl', { class: 'fields' });
  for (const [k, v] of pairs) dl.append(el('dt', { text: k }), v instanceof Node ? el('dd', {}, v) : el('dd', { text: v === undefined || v === '' ? '—' : String(v) }));
  return dl;
}

function cut(s, n) { return s.length > n ? s.slice(0, n - 1) + '…' : s; }

function show(out, ...nodes) { out.replaceChildren(...nodes); }

function ok(out, title, node, kind) { show(out, el('div', { class: 'result' + (kind ? ' ' + kind : '') }, el('strong', { text: title }), node)); }

/** A version as the API prints it: every field is present, and "0" means none (queued, or nothing there). */
function version(v) { return v && v !== '0' ? v : ''; }

function showError(out, e) {
  let head;
  if (e instanceof ApiError) {
    head = e.status === 0 ? 'Network error' : (HTTP_TITLES[e.status] || 'Error') + ' (HTTP ' + e.status + (e.code ? ', ' + e.code : '') + ')';
  } else {
    head = 'Invalid input';
  }
  const box = el('div', { class: 'error', role: 'alert' }, el('strong', { text: head + ': ' }), document.createTextNode(e.message));
  for (const d of e.details || []) {
    const meta = d.metadata ? Object.entries(d.metadata).map(([k, v]) => k.replace(/_/g, ' ') + ' ' + v).join(', ') : '';
    if (d.reason || meta) box.append(el('div', { class: 'detail', text: [d.reason, meta].filter(Boolean).join(': ') }));
  }
  if (e instanceof ApiError && e.status === 401) {
    box.append(el('div', { class: 'detail', text: 'This stack asks for an API token: paste one under "API token" above.' }));
  }
  show(out, box);
}

/** "30s", "5m", "1h30m", "250ms", "2d" → protobuf JSON duration "1800s"; '' → null. */
function parseTtl(text) {
  const s = text.trim().toLowerCase();
  if (!s) return null;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0, m;
  while (re.lastIndex < s.length && (m = re.exec(s))) total += parseFloat(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
  if (re.lastIndex !== s.length || total <= 0) throw new Error('TTL "' + text + '" is not a duration: use e.g. 30s, 5m, 1h30m');
  return (Math.round(total * 1000) / 1000) + 's';
}

function parseVersion(text, what) {
  const s = text.trim();
  if (!s) return null;
  if (!/^\d+$/.test(s)) throw new Error(what + ' must be a whole number ≥ 0');
  return s;
}

function requireKey(input) {
  if (!input.value) { input.focus(); throw new Error('key must not be empty'); }
  return input.value;
}

function opButton(id) {
  return el('button', { type: 'button', class: 'linklike', title: 'Look up this operation', onclick: () => lookupOp(id) }, id);
}

function guard(form, out, fn) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true; form.setAttribute('aria-busy', 'true');
    try { await fn(); } catch (e) { showError(out, e); } finally { btn.disabled = false; form.removeAttribute('aria-busy'); }
  });
}

// ---------------------------------------------------------------- put / get / delete / operation

guard($('put-form'), $('put-out'), async () => {
  const key = requireKey($('put-key'));
  const body = { data: { key, value: $('put-value').value } };
  if ($('put-sync').checked) body.mode = 'SYNC';
  const ttl = parseTtl($('put-ttl').value); if (ttl) body.ttl = ttl;
  const ev = parseVersion($('put-expect').value, 'expected version'); if (ev !== null) body.expectedVersion = ev;
  const r = await api('PUT', '/kv', body);
  ok($('put-out'), r.status === 'applied' ? 'Applied' : 'Queued', fields([
    ['key', key], ['status', r.status], ['operation', opButton(r.operationId)],
    ['version', version(r.version) || (r.status === 'queued' ? 'assigned when applied' : '')]]));
});

async function getKey(key) {
  const r = await api('GET', '/kv?key=' + encodeURIComponent(key));
  const d = r.data || {};
  ok($('get-out'), 'Found', fields([['key', d.key], ['value', d.value ?? ''], ['version', d.version], ['source', r.source],
    ['created', fmtTime(d.createTime)], ['updated', fmtTime(d.updateTime)], ['expires', d.expireTime ? fmtTime(d.expireTime) : 'never']]));
}
guard($('get-form'), $('get-out'), () => getKey(requireKey($('get-key'))));

guard($('del-form'), $('del-out'), async () => {
  const key = requireKey($('del-key'));
  const q = new URLSearchParams({ key });
  if ($('del-sync').checked) q.set('mode', 'SYNC');
  const ev = parseVersion($('del-expect').value, 'expected version'); if (ev !== null) q.set('expectedVersion', ev);
  const r = await api('DELETE', '/kv?' + q);
  // An applied delete of a key that was not there changes nothing: its operation says why ("key did not exist"),
  // and no version was written. Say so instead of a green "Deleted".
  let reason = '';
  if (r.status === 'applied') {
    try { reason = ((await api('GET', '/kv/operations/' + encodeURIComponent(r.operationId))).data || {}).reason || ''; } catch { /* shown as applied */ }
  }
  if (r.status === 'applied' && (reason || !version(r.version))) {
    ok($('del-out'), 'Nothing deleted: ' + (reason || 'key did not exist'), fields([
      ['key', key], ['status', r.status + ', nothing changed'], ['operation', opButton(r.operationId)], ['version', version(r.version) || '—']]), 'noop');
    return;
  }
  ok($('del-out'), r.status === 'applied' ? 'Deleted' : 'Delete queued', fields([
    ['key', key], ['status', r.status], ['operation', opButton(r.operationId)], ['version', version(r.version) || '—']]));
});

async function lookupOp(id) {
  $('op-id').value = id;
  try {
    const r = await api('GET', '/kv/operations/' + encodeURIComponent(id));
    const d = r.data || {};
    ok($('op-out'), d.state || 'UNKNOWN', fields([['operation', d.operationId], ['state', d.state], ['key', d.key], ['kind', d.kind],
      ['version', version(d.version)], ['reason', d.reason], ['applied', fmtTime(d.applyTime)]]));
  } catch (e) { showError($('op-out'), e); }
  $('op-out').scrollIntoView({ block: 'nearest' });
}
guard($('op-form'), $('op-out'), async () => {
  const id = $('op-id').value.trim();
  if (!id) { $('op-id').focus(); throw new Error('operation id must not be empty'); }
  await lookupOp(id);
});

// ---------------------------------------------------------------- list with paging

const list = { tokens: [''], page: 0, prefix: '', size: 20 };

async function loadPage() {
  const q = new URLSearchParams({ prefix: list.prefix, pageSize: String(list.size) });
  if (list.tokens[list.page]) q.set('pageToken', list.tokens[list.page]);
  try {
    const r = await api('GET', '/kv/all?' + q);
    const rows = r.data || [];
    list.tokens[list.page + 1] = r.nextPageToken || '';
    if (rows.length === 0) {
      show($('ls-out'), el('p', { class: 'empty', text: list.page === 0 ? 'No keys' + (list.prefix ? ' under "' + list.prefix + '"' : '') + '.' : 'No more keys.' }));
    } else {
      const tbody = el('tbody');
      for (const d of rows) {
        const keyBtn = el('button', { type: 'button', class: 'linklike', title: 'Get this key',
          onclick: () => { $('get-key').value = d.key; $('del-key').value = d.key; getKey(d.key).catch((e) => showError($('get-out'), e)); $('get-h').scrollIntoView({ block: 'nearest' }); } }, d.key);
        tbody.append(el('tr', {}, el('td', { class: 'mono' }, keyBtn), el('td', { class: 'mono value', title: (d.value ?? '').length > 200 ? 'truncated; Get shows the whole value' : '', text: cut(d.value ?? '', 200) }),
          el('td', { class: 'mono', text: d.version }), el('td', { class: 'updated', text: d.updateTime ? new Date(d.updateTime).toLocaleString() : '—' })));
      }
      show($('ls-out'), el('div', { class: 'table-wrap' }, el('table', {},
        el('caption', { class: 'sr-only', text: 'Entries, page ' + (list.page + 1) }),
        el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Key' }), el('th', { scope: 'col', text: 'Value' }),
          el('th', { scope: 'col', text: 'Version' }), el('th', { scope: 'col', class: 'updated', text: 'Updated' }))), tbody)));
    }
    $('ls-page').textContent = 'Page ' + (list.page + 1) + ' · ' + rows.length + (rows.length === 1 ? ' entry' : ' entries');
    $('ls-prev').disabled = list.page === 0;
    $('ls-next').disabled = !r.nextPageToken;
  } catch (e) {
    showError($('ls-out'), e);
  }
}
guard($('ls-form'), $('ls-out'), async () => {
  const size = Number($('ls-size').value || 20);
  if (!Number.isInteger(size) || size < 1 || size > 1000) throw new Error('page size must be between 1 and 1000');
  Object.assign(list, { tokens: [''], page: 0, prefix: $('ls-prefix').value, size });
  await loadPage();
});
$('ls-next').addEventListener('click', () => { list.page++; loadPage(); });
$('ls-prev').addEventListener('click', () => { list.page = Math.max(0, list.page - 1); loadPage(); });

// ---------------------------------------------------------------- live feed (Watch: NDJSON over fetch streaming)

const MAX_EVENTS = 500;
const feed = { controller: null, paused: false, buffered: [], seen: 0, retry: null, wanted: false };

function feedStatus(text, live) {
  $('feed-status').textContent = text;
  $('feed-status').classList.toggle('live', !!live);
}

function renderEvent(ev) {
  const t = ev.time ? new Date(ev.time) : null;
  const li = el('li', { 'data-type': ev.type || '' },
    el('span', { class: 't', title: ev.time || '', text: t ? t.toLocaleTimeString() : '—' }),
    el('span', { class: 'type ' + (ev.type || ''), text: (ev.type || '?') + (version(ev.version) ? ' v' + ev.version : '') }),
    el('span', { class: 'kv' }, el('span', { class: 'k', text: ev.key }),
      ev.type === 'PUT' ? el('span', { class: 'v', text: ' = ' + (ev.value ?? '') }) : null));
  const list = $('feed');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

function onEvent(ev) {
  feed.seen++;
  if (feed.paused) {
    feed.buffered.push(ev);
    feedStatus('Paused · ' + feed.buffered.length + ' new event' + (feed.buffered.length === 1 ? '' : 's') + ' held back.', false);
  } else {
    renderEvent(ev);
    feedStatus('Watching ' + feedScope() + ' · ' + feed.seen + ' event' + (feed.seen === 1 ? '' : 's') + ' received.', true);
  }
}

function feedScope() {
  const p = $('feed-prefix').value;
  return p ? 'keys under "' + p + '"' : 'every key';
}

async function watch() {
  const q = new URLSearchParams();
  if ($('feed-prefix').value) q.set('prefix', $('feed-prefix').value);
  const sv = $('feed-start').value.trim();
  if (sv && sv !== '0') q.set('startVersion', parseVersion(sv, 'start version'));
  const controller = new AbortController();
  feed.controller = controller;
  // The response (and its headers) arrives with the first event, so "listening" is shown as soon as the request is out.
  feedStatus('Watching ' + feedScope() + ' · waiting for changes…', true);
  show($('feed-error'));
  try {
    const res = await fetch('/kv/watch?' + q, { signal: controller.signal, headers: withToken({ Accept: 'application/x-ndjson' }), cache: 'no-store' });
    if (!res.ok) {
      let body; try { body = JSON.parse(await res.text()); } catch { body = { message: res.statusText }; }
      throw new ApiError(res.status, body);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg;
        try { msg = JSON.parse(line); } catch { continue; }
        // A stream error arrives as a status object instead of an event.
        if (msg && msg.type === undefined && msg.message !== undefined) throw new ApiError(500, msg);
        onEvent(msg);
      }
    }
    if (feed.controller === controller && feed.wanted) reconnect('The stream ended');
  } catch (e) {
    if (controller.signal.aborted) return;
    showError($('feed-error'), e);
    if (feed.wanted && !(e instanceof ApiError && e.status >= 400 && e.status < 500)) reconnect('Disconnected');
    else stopWatch('Stopped.');
  }
}

function reconnect(why) {
  feedStatus(why + '; reconnecting in 3 s…', false);
  clearTimeout(feed.retry);
  feed.retry = setTimeout(() => { if (feed.wanted) watch(); }, 3000);
}

function stopWatch(text) {
  feed.wanted = false;
  clearTimeout(feed.retry);
  if (feed.controller) feed.controller.abort();
  feed.controller = null;
  $('feed-toggle').textContent = 'Start watching';
  $('feed-pause').disabled = true;
  setPaused(false);
  feedStatus(text || 'Not watching.', false);
}

function setPaused(paused) {
  feed.paused = paused;
  $('feed-pause').setAttribute('aria-pressed', String(paused));
  $('feed-pause').textContent = paused ? 'Resume' : 'Pause';
  if (!paused) {
    for (const ev of feed.buffered) renderEvent(ev);
    feed.buffered = [];
    if (feed.wanted) feedStatus('Watching ' + feedScope() + ' · ' + feed.seen + ' event' + (feed.seen === 1 ? '' : 's') + ' received.', true);
  } else {
    feedStatus('Paused · new events are held back until you resume.', false);
  }
}

$('feed-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (feed.wanted) { stopWatch('Stopped.'); return; }
  try { parseVersion($('feed-start').value, 'start version'); } catch (e) { showError($('feed-error'), e); return; }
  feed.wanted = true; feed.seen = 0;
  $('feed-toggle').textContent = 'Stop watching';
  $('feed-pause').disabled = false;
  watch();
});
$('feed-pause').addEventListener('click', () => setPaused(!feed.paused));
$('feed-clear').addEventListener('click', () => {
  $('feed').replaceChildren();
  feed.buffered = []; feed.seen = 0;
  if (feed.wanted && !feed.paused) feedStatus('Watching ' + feedScope() + ' · cleared.', true);
});

// ---------------------------------------------------------------- API token

function tokenStatus() {
  $('token-status').textContent = token() ? 'A token is set: every request sends it.' : 'No token set (needed only when the stack has auth on).';
  $('token-forget').disabled = !token();
}
$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('token-input').value.trim().replace(/^Bearer\s+/i, '');
  if (t) { try { localStorage.setItem(TOKEN_KEY, t); } catch { /* private mode: not kept */ } }
  $('token-input').value = '';
  tokenStatus();
});
$('token-forget').addEventListener('click', () => {
  try { localStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
  tokenStatus();
});
tokenStatus();

// ---------------------------------------------------------------- health

async function health() {
  let up = false;
  try { up = (await fetch('/healthz', { cache: 'no-store' })).ok; } catch { up = false; }
  $('health').classList.toggle('up', up);
  $('health').classList.toggle('down', !up);
  $('health-text').textContent = up ? 'service healthy' : 'service unavailable';
}
health();
setInterval(health, 10000);
