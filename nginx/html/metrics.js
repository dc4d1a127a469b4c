// kvmesh metrics page: asks Prometheus (through nginx's loopback-only /prometheus/api/v1/query) every 2 s and shows
// live numbers across all replicas. Without Prometheus (the default stack) it says how to start it, and keeps asking.
'use strict';

const PROM = '/prometheus/api/v1/query';
const POLL_MS = 2000;
const HISTORY = 90;                       // sparkline points: 3 minutes at one per 2 s
const W = '[15s]';                        // rate and percentile window: about 7 scrapes
const KV = 'service="kvmesh.v1.KeyValue"';
const SERVER_ERRORS = ['UNKNOWN', 'INTERNAL', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'DATA_LOSS', 'RESOURCE_EXHAUSTED'];
const OK_CODES = ['OK'];

// kvmesh's own meter names (kv-service: io.kvmesh.service.metrics.ServiceMeters). The consumer's are matched loosely:
// a tile whose meter no part serves says so instead of showing a number.
const QUERIES = {
  up: 'up',
  calls: `sum by (method, statusCode) (rate(grpc_server_processing_duration_seconds_count{${KV}}${W}))`,
  p99: `histogram_quantile(0.99, sum by (le) (rate(grpc_server_processing_duration_seconds_bucket{${KV},method!="Watch"}${W})))`,
  p50: `histogram_quantile(0.5, sum by (le) (rate(grpc_server_processing_duration_seconds_bucket{${KV},method!="Watch"}${W})))`,
  p99ByMethod: `histogram_quantile(0.99, sum by (le, method) (rate(grpc_server_processing_duration_seconds_bucket{${KV},method!="Watch"}${W})))`,
  lag99: `histogram_quantile(0.99, sum by (le) (rate(kvmesh_events_lag_seconds_bucket${W})))`,
  lag50: `histogram_quantile(0.5, sum by (le) (rate(kvmesh_events_lag_seconds_bucket${W})))`,
  publish99: `histogram_quantile(0.99, sum by (le) (rate(kvmesh_publish_seconds_bucket{outcome="confirmed"}${W})))`,
  published: `sum by (outcome) (rate(kvmesh_publish_seconds_count${W}))`,
  batchOps: `sum(rate(kvmesh_publish_batch_ops_sum${W})) / sum(rate(kvmesh_publish_batch_ops_count${W}))`,
  // every consumer (active or standby) reports each partition queue's depth: the same queue once, not per consumer
  backlog: 'sum(max by (partition) (kvmesh_consumer_queue_backlog_messages))',
  apply99: `histogram_quantile(0.99, sum by (le) (rate({__name__=~"kvmesh_consumer_apply.*_seconds_bucket|kvmesh_apply.*_seconds_bucket"}${W})))`,
  cache: `sum by (source) (rate(kvmesh_cache_reads_total${W}))`,
  watchers: 'sum(kvmesh_watch_streams)',
  watchBytes: 'sum(kvmesh_watch_buffered_bytes)',
  syncWaiting: 'sum(kvmesh_sync_waiting)',
  syncTimeouts: `sum(rate(kvmesh_sync_wait_seconds_count{outcome="timeout"}${W}))`,
};

const $ = (id) => document.getElementById(id);
const sparkHistory = {};

class PromError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function query(q) {
  let res;
  try {
    res = await fetch(PROM + '?query=' + encodeURIComponent(q), { headers: { Accept: 'application/json' }, cache: 'no-store',
      signal: AbortSignal.timeout(POLL_MS * 5) });
  } catch (e) {
    throw new PromError(0, 'no answer from nginx');
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* an HTML or empty error page */ }
  if (!res.ok || !body || body.status !== 'success') {
    throw new PromError(res.status, (body && (body.error || body.message)) || `HTTP ${res.status}`);
  }
  return body.data.result;
}

/** The one number of an instant vector with a single series (or null when it has none or it is not a number). */
function scalar(result) {
  if (!result.length) return null;
  const v = parseFloat(result[0].value[1]);
  return Number.isFinite(v) ? v : null;
}

const fmtNum = (v, digits = 0) => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
function fmtRate(v) { return v >= 100 ? fmtNum(v) : v >= 10 ? fmtNum(v, 1) : fmtNum(v, 2); }
function fmtSeconds(s) {
  if (s >= 1) return [fmtNum(s, 2), 's'];
  const ms = s * 1000;
  return [ms >= 100 ? fmtNum(ms) : ms >= 10 ? fmtNum(ms, 1) : fmtNum(ms, 2), 'ms'];
}
function fmtBytes(b) {
  if (b >= 1 << 20) return fmtNum(b / (1 << 20), 1) + ' MiB';
  if (b >= 1 << 10) return fmtNum(b / (1 << 10), 1) + ' KiB';
  return fmtNum(b) + ' B';
}

/** Shows a tile: value (null = no data, with why), unit, sub-line; adds the value to its sparkline. */
function tile(id, value, unit, sub, { bad = false, spark = null } = {}) {
  const el = $(id);
  const v = el.querySelector('.v');
  v.textContent = value === null ? '—' : value;
  if (value !== null && unit) {
    const u = document.createElement('span');
    u.className = 'unit'; u.textContent = unit;
    v.appendChild(u);
  }
  el.querySelector('.sub').textContent = sub || '';
  el.classList.toggle('na', value === null);
  el.classList.toggle('bad', bad);
  const h = sparkHistory[id] || (sparkHistory[id] = []);
  h.push(typeof spark === 'number' && Number.isFinite(spark) ? spark : null);
  if (h.length > HISTORY) h.shift();
  drawSpark(el.querySelector('.spark'), h);
}

function drawSpark(svg, points) {
  const vals = points.filter((p) => p !== null);
  svg.replaceChildren();
  if (vals.length < 2) return;
  const max = Math.max(...vals) || 1;
  svg.setAttribute('viewBox', `0 0 ${HISTORY - 1} 100`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const start = HISTORY - points.length;
  const xy = [];
  points.forEach((p, i) => { if (p !== null) xy.push(`${start + i},${(100 - (p / max) * 94).toFixed(1)}`); });
  const ns = 'http://www.w3.org/2000/svg';
  const area = document.createElementNS(ns, 'polygon');
  area.setAttribute('points', `${xy[0].split(',')[0]},100 ${xy.join(' ')} ${xy[xy.length - 1].split(',')[0]},100`);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', xy.join(' '));
  svg.append(area, line);
}

function showMessage(html) {
  const m = $('metrics-message');
  m.innerHTML = html;
  m.hidden = false;
  $('tiles').hidden = true;
}

function setProm(state, text) {
  document.body.dataset.state = state;
  $('prom').className = 'health ' + (state === 'live' ? 'up' : 'down');
  $('prom-text').textContent = text;
}

function explain(e) {
  if (e.status === 403) {
    setProm('forbidden', 'metrics: this machine only');
    showMessage('The metrics are shown to browsers on the stack\'s own machine only: nginx answers '
      + '<code>/prometheus/</code> for 127.0.0.1 and ::1 and refuses everyone else (see <code>nginx/nginx.conf</code>). '
      + 'Open this page through <code>http://127.0.0.1:…/metrics.html</code> on that machine, or an SSH tunnel.');
  } else if (e.status === 0 || e.status === 502 || e.status === 503 || e.status === 504) {
    setProm('off', 'Prometheus is not running');
    showMessage('<strong>Prometheus is not running</strong>, so there are no live numbers to show. Start the stack with '
      + '<code>KVMESH_PROMETHEUS=1 ./start.sh</code> and this page fills in by itself within a few seconds. '
      + 'Each part\'s own Prometheus text is at the <code>/metrics</code> addresses that <code>./start.sh status</code> lists.');
  } else {
    setProm('error', 'Prometheus: error');
    showMessage('Prometheus answered with an error (HTTP ' + e.status + '): ' + e.message.replace(/[<>&]/g, ''));
  }
}

async function refresh() {
  const names = Object.keys(QUERIES);
  let results;
  try {
    results = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await query(QUERIES[n])])));
  } catch (e) {
    explain(e);
    return;
  }
  setProm('live', 'Prometheus: live');
  $('metrics-message').hidden = true;
  $('tiles').hidden = false;
  render(results);
  $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString('en-GB') + '.';
}

function render(r) {
  // requests by method and status code (unary calls; a Watch counts when its stream ends)
  const byMethod = {};
  let total = 0, serverErr = 0, clientErr = 0;
  for (const s of r.calls) {
    const v = parseFloat(s.value[1]) || 0;
    const m = byMethod[s.metric.method] || (byMethod[s.metric.method] = { rate: 0, client: 0, server: 0 });
    m.rate += v;
    if (s.metric.method !== 'Watch') total += v;
    if (SERVER_ERRORS.includes(s.metric.statusCode)) { m.server += v; serverErr += v; }
    else if (!OK_CODES.includes(s.metric.statusCode)) { m.client += v; clientErr += v; }
  }
  const top = Object.entries(byMethod).filter(([k]) => k !== 'Watch').sort((a, b) => b[1].rate - a[1].rate)
    .slice(0, 3).map(([k, m]) => `${k} ${fmtRate(m.rate)}`).join(' · ');
  tile('t-throughput', fmtRate(total), 'req/s', top || 'no requests in the last 15 s', { spark: total });

  const p99 = scalar(r.p99), p50 = scalar(r.p50);
  tile('t-latency', p99 === null ? null : fmtSeconds(p99)[0], p99 === null ? '' : fmtSeconds(p99)[1],
    p99 === null ? 'no requests in the last 15 s' : `p50 ${fmtSeconds(p50 ?? 0).join(' ')} · unary calls, server side`,
    { spark: p99 });

  const errPct = total > 0 ? (serverErr / total) * 100 : 0;
  tile('t-errors', fmtNum(errPct, 2), '%', `${fmtRate(serverErr)}/s server · ${fmtRate(clientErr)}/s client (4xx)`,
    { bad: serverErr > 0, spark: errPct });

  const lag = scalar(r.lag99), lag50 = scalar(r.lag50);
  tile('t-lag', lag === null ? null : fmtSeconds(lag)[0], lag === null ? '' : fmtSeconds(lag)[1],
    lag === null ? 'no writes applied in the last 15 s' : `p50 ${fmtSeconds(lag50 ?? 0).join(' ')} · accepted → in PostgreSQL and Redis, event back`,
    { spark: lag });

  const pub = scalar(r.publish99);
  const outcomes = Object.fromEntries(r.published.map((s) => [s.metric.outcome, parseFloat(s.value[1]) || 0]));
  tile('t-publish', pub === null ? null : fmtSeconds(pub)[0], pub === null ? '' : fmtSeconds(pub)[1],
    `${fmtRate(outcomes.confirmed || 0)} writes/s confirmed · ${fmtRate(outcomes.failed || 0)}/s failed`
      + (scalar(r.batchOps) === null ? '' : ` · ${fmtNum(scalar(r.batchOps), 1)} per message`),
    { bad: (outcomes.failed || 0) > 0, spark: pub });

  const backlog = scalar(r.backlog);
  tile('t-backlog', backlog === null ? null : fmtNum(backlog), backlog === null ? '' : 'msgs',
    backlog === null ? 'no backlog meter on the consumers\' /metrics yet' : 'broker messages queued, not yet applied',
    { spark: backlog });

  const apply = scalar(r.apply99);
  tile('t-apply', apply === null ? null : fmtSeconds(apply)[0], apply === null ? '' : fmtSeconds(apply)[1],
    apply === null ? 'no apply meter on the consumers\' /metrics yet' : 'one batch into PostgreSQL and Redis',
    { spark: apply });

  const cache = Object.fromEntries(r.cache.map((s) => [s.metric.source, parseFloat(s.value[1]) || 0]));
  const reads = (cache.redis || 0) + (cache.postgres || 0);
  const ratio = reads > 0 ? (cache.redis || 0) / reads * 100 : null;
  tile('t-cache', ratio === null ? null : fmtNum(ratio, 1), ratio === null ? '' : '%',
    ratio === null ? 'no Gets in the last 15 s' : `${fmtRate(cache.redis || 0)}/s from Redis · ${fmtRate(cache.postgres || 0)}/s from PostgreSQL`,
    { spark: ratio });

  const watchers = scalar(r.watchers) ?? 0;
  tile('t-watch', fmtNum(watchers), 'streams', `${fmtBytes(scalar(r.watchBytes) ?? 0)} held for slow clients`,
    { spark: watchers });

  const waiting = scalar(r.syncWaiting) ?? 0, timeouts = scalar(r.syncTimeouts) ?? 0;
  tile('t-sync', fmtNum(waiting), '', `${fmtRate(timeouts)}/s timed out (answered "queued")`, { bad: timeouts > 0, spark: waiting });

  const p99s = Object.fromEntries(r.p99ByMethod.map((s) => [s.metric.method, parseFloat(s.value[1])]));
  const rows = Object.entries(byMethod).sort((a, b) => a[0].localeCompare(b[0])).map(([k, m]) => {
    const tr = document.createElement('tr');
    const p = p99s[k];
    [k, fmtRate(m.rate), Number.isFinite(p) ? fmtSeconds(p).join(' ') : '—', fmtRate(m.client), fmtRate(m.server)]
      .forEach((text, i) => { const td = document.createElement('td'); td.textContent = text; if (i) td.className = 'num'; tr.appendChild(td); });
    return tr;
  });
  $('methods').tBodies[0].replaceChildren(...rows);

  const targets = r.up.slice().sort((a, b) => (a.metric.job + a.metric.instance).localeCompare(b.metric.job + b.metric.instance))
    .map((s) => {
      const tr = document.createElement('tr');
      const up = s.value[1] === '1';
      [s.metric.job, s.metric.instance, up ? 'up' : 'down (no /metrics answer)'].forEach((text, i) => {
        const td = document.createElement('td'); td.textContent = text;
        if (i === 1) td.className = 'mono';
        if (i === 2) td.className = up ? 'up' : 'down';
        tr.appendChild(td);
      });
      return tr;
    });
  $('targets').tBodies[0].replaceChildren(...targets);
}

async function loop() {
  await refresh();
  setTimeout(loop, POLL_MS);
}
loop();
