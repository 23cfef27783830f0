// The Bellwether web UI: reads the collector's JSON API and renders the services,
// service, release and alerts pages. Everything from the API goes into the page through
// textContent or attribute setters, never as HTML.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const CHART_WINDOW_MS = 30 * 60 * 1000;
  const CHART_RELEASES = 5;

  const main = document.getElementById('main');
  const status = document.getElementById('status');
  let busy = false;

  // Element builder: el('a', { href: '/x', class: 'y' }, 'text', child, ...).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (key === 'class') {
        e.className = value;
      } else if (key === 'onclick') {
        e.addEventListener('click', value);
      } else {
        e.setAttribute(key, String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) {
        continue;
      }
      e.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return e;
  }

  const enc = encodeURIComponent;

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: { accept: 'application/json' } }, options || {}));
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error : 'HTTP ' + response.status;
      const error = new Error(path + ': ' + message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function post(path, body) {
    return api(path, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
  }

  function percent(rate) {
    if (rate === null || rate === undefined || !isFinite(rate)) {
      return 'n/a';
    }
    return (rate * 100).toFixed(rate < 0.001 && rate > 0 ? 3 : 2) + '%';
  }

  function number(n) {
    return n === null || n === undefined ? 'n/a' : Number(n).toLocaleString('en-US');
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) {
      return s + 's ago';
    }
    if (s < 3600) {
      return Math.floor(s / 60) + 'm ' + (s % 60) + 's ago';
    }
    if (s < 86400) {
      return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm ago';
    }
    return Math.floor(s / 86400) + 'd ago';
  }

  function when(ms) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function badge(word) {
    const w = word || 'pending';
    return el('span', { class: 'badge ' + w, 'data-verdict': w }, w);
  }

  function releaseHref(service, version, environment) {
    return '/releases/' + enc(service) + '/' + enc(version) + '?environment=' + enc(environment);
  }

  function serviceHref(service, environment) {
    return '/services/' + enc(service) + (environment ? '?environment=' + enc(environment) : '');
  }

  // A link only for http(s) URLs; anything else is shown as text.
  function safeLink(url) {
    if (typeof url === 'string' && /^https?:\/\//i.test(url)) {
      return el('a', { href: url, rel: 'noopener noreferrer' }, url);
    }
    return document.createTextNode(url || '—');
  }

  function table(headers, rows, attrs) {
    const head = el('tr', null, ...headers.map((h) => el('th', { class: h.num ? 'num' : null }, h.label || h)));
    return el('table', attrs || null, el('thead', null, head), el('tbody', null, ...rows));
  }

  function td(content, num) {
    return el('td', { class: num ? 'num' : null }, content);
  }

  function kv(pairs) {
    const dl = el('dl', { class: 'kv' });
    for (const [key, value] of pairs) {
      dl.appendChild(el('dt', null, key));
      dl.appendChild(el('dd', null, value === null || value === undefined ? '—' : value));
    }
    return dl;
  }

  function query(name) {
    return new URLSearchParams(window.location.search).get(name);
  }

  // ---- charts ------------------------------------------------------------------------

  function exposureOf(counts, hasSpans) {
    return hasSpans ? counts.server_spans || 0 : counts.log_records || 0;
  }

  // Error rate per bucket of each release, deploy markers and verdict bands.
  async function errorRateChart(service, environment, versions) {
    const now = Date.now();
    const loaded = await Promise.all(versions.map(async (version) => {
      const base = '/api/v1/releases/' + enc(service) + '/' + enc(version);
      const [stats, verdicts] = await Promise.all([
        api(base + '/stats?environment=' + enc(environment)),
        api(base + '/verdicts?environment=' + enc(environment)).catch(() => ({ timeline: [] })),
      ]);
      return { version: version, stats: stats, timeline: verdicts.timeline || [] };
    }));
    // From the first bucket with data (or the first deploy), at most CHART_WINDOW_MS back.
    const earliest = Math.min(...loaded.map((r) => r.stats.release.started_at_unix_ms));
    const firstBucket = Math.min(...loaded.flatMap((r) => r.stats.buckets.map((b) => b.start_unix_ms)));
    const start = isFinite(firstBucket) ? firstBucket : earliest;
    const from = Math.max(now - CHART_WINDOW_MS, Math.min(start, now - 60000) - 10000);
    const bucketMs = 10000;
    const series = loaded.map((r, i) => {
      const hasSpans = (r.stats.release.totals.spans || 0) > 0;
      const points = r.stats.buckets
        .map((b) => ({ t: b.start_unix_ms + bucketMs / 2, exposure: exposureOf(b, hasSpans), errors: b.errors || 0 }))
        .filter((b) => b.exposure > 0)
        .map((b) => ({ t: b.t, v: b.errors / b.exposure }));
      return { name: r.version, color: window.BellwetherChart.colorOf(i), points: points };
    });
    const markers = loaded.map((r) => ({ t: r.stats.release.started_at_unix_ms, label: r.version }));
    const bands = loaded.map((r) => ({
      name: r.version,
      segments: r.timeline.map((entry, j) => ({
        from: entry.at_unix_ms,
        to: j + 1 < r.timeline.length ? r.timeline[j + 1].at_unix_ms : now,
        verdict: entry.verdict,
      })),
    }));
    const svg = window.BellwetherChart.timeChart({
      series: series, markers: markers, bands: bands, from: from, to: now + 5000,
      format: (v) => percent(v), title: 'error rate of ' + service + ' in ' + environment,
    });
    const legend = el('div', { class: 'legend' }, ...series.map((s) => {
      const swatch = el('span', { class: 'swatch' });
      swatch.style.background = s.color;
      return el('span', null, swatch, s.name + ' (' + s.points.length + ' buckets)');
    }));
    return el('div', { class: 'card', id: 'error-rate-chart' },
      el('div', { class: 'muted' }, 'Error rate per 10 s bucket, deploys dashed, verdicts below'),
      svg, legend);
  }

  // ---- pages -------------------------------------------------------------------------

  async function servicesPage() {
    const data = await api('/api/v1/services');
    const rows = [];
    for (const s of data.services) {
      for (const env of s.environments) {
        const c = env.current;
        rows.push(el('tr', { 'data-service': s.service, 'data-environment': env.environment },
          td(el('a', { href: serviceHref(s.service, env.environment) }, s.service)),
          td(env.environment),
          td(el('a', { href: releaseHref(s.service, c.version, env.environment) }, c.version)),
          td(badge(c.verdict)),
          td(c.summary || '', false),
          td(ago(c.started_at_unix_ms)),
          td(env.firing_alerts > 0 ? el('a', { href: '/alerts?state=firing' }, el('span', { class: 'badge firing' }, String(env.firing_alerts))) : '0', true),
          td(env.team)));
      }
    }
    const content = [el('h1', null, 'Services'),
      el('p', { class: 'sub' }, 'The current release of every service per environment, and how it is doing.')];
    if (rows.length === 0) {
      content.push(el('div', { class: 'empty' }, 'No releases yet. Record one with `bellwether deploy`, or send telemetry.'));
    } else {
      content.push(table(['Service', 'Environment', 'Current release', 'Verdict', 'Why', 'Deployed',
        { label: 'Firing alerts', num: true }, 'Team'], rows, { id: 'services' }));
    }
    return content;
  }

  async function servicePage(service) {
    const wanted = query('environment');
    const detail = await api('/api/v1/services/' + enc(service) + (wanted ? '?environment=' + enc(wanted) : ''));
    const content = [el('h1', null, service)];
    const all = wanted ? null : detail.environments;
    if (all && all.length > 1) {
      content.push(el('div', { class: 'chips' }, ...all.map((e) => el('a', { href: serviceHref(service, e.environment) }, e.environment))));
    }
    const env = detail.environments[0];
    content.push(el('p', { class: 'sub' }, 'Environment ' + env.environment + ' · owned by ' + env.team + ' (' + env.routed_by + ')'));
    const versions = env.releases.slice(0, CHART_RELEASES).map((r) => r.version).reverse();
    content.push(el('h2', null, 'Error rate by version'));
    content.push(await errorRateChart(service, env.environment, versions));

    content.push(el('h2', null, 'Current release vs baseline'));
    const method = env.method ? ' (' + env.method + ', exposure: ' + env.exposure_kind + ')' : '';
    content.push(el('p', { class: 'muted' }, env.baseline ? 'Baseline ' + env.baseline + method : 'No baseline yet' + method));
    content.push(table(['', 'Version', { label: 'Requests', num: true }, { label: 'Errors', num: true },
      { label: 'Error rate', num: true }, { label: 'p95', num: true }, { label: 'New issues', num: true }],
    env.comparison.map((row) => el('tr', { 'data-role': row.role },
      td(row.role), td(el('a', { href: releaseHref(service, row.version, env.environment) }, row.version)),
      td(number(row.exposure), true), td(number(row.errors), true), td(percent(row.error_rate), true),
      td(row.p95_ms === null || row.p95_ms === undefined ? 'n/a' : row.p95_ms.toFixed(1) + ' ms', true),
      td(row.new_issues + (row.regressed_issues ? ' (+' + row.regressed_issues + ' regressed)' : ''), true))),
    { id: 'comparison' }));

    content.push(el('h2', null, 'Release history'));
    content.push(table(['Version', 'Deployed', 'Source', 'Commit', 'Verdict', { label: 'Requests', num: true },
      { label: 'Errors', num: true }, { label: 'Error rate', num: true }, { label: 'Firing alerts', num: true }],
    env.releases.map((r) => el('tr', { 'data-version': r.version },
      td(el('a', { href: releaseHref(service, r.version, env.environment) }, r.version)),
      td(el('span', { title: when(r.started_at_unix_ms) }, ago(r.started_at_unix_ms))),
      td(r.source), td(el('span', { class: 'mono' }, r.commit || '—')),
      td(r.verdict ? badge(r.verdict) : el('span', { class: 'muted' }, 'not evaluated')),
      td(number(r.exposure), true), td(number(r.errors), true), td(percent(r.error_rate), true),
      td(String(r.firing_alerts), true))),
    { id: 'history' }));
    return content;
  }

  function alertActions(alert) {
    const cell = el('td', { class: 'actions' });
    if (alert.state === 'firing') {
      cell.appendChild(el('button', {
        class: 'ack',
        onclick: () => act(() => post('/api/v1/alerts/' + enc(alert.id) + '/ack', { by: 'web UI' })),
      }, 'Ack'));
      cell.appendChild(document.createTextNode(' '));
    }
    if (alert.state !== 'resolved') {
      cell.appendChild(el('button', {
        class: 'silence',
        onclick: () => act(() => post('/api/v1/silences', {
          matchers: {
            service: alert.release.service, environment: alert.release.environment,
            version: alert.release.version, kind: alert.kind,
          },
          duration: '1h',
          comment: 'silenced from the web UI',
          created_by: 'web UI',
        })),
      }, 'Silence 1h'));
    }
    return cell;
  }

  function alertRow(alert, withRelease) {
    const r = alert.release;
    const sentTo = Object.keys(alert.sent || {});
    return el('tr', { 'data-alert': alert.id, 'data-state': alert.state },
      td(badge(alert.state)), td(badge(alert.severity)),
      withRelease ? td(el('a', { href: releaseHref(r.service, r.version, r.environment) }, r.service + ' ' + r.version + ' (' + r.environment + ')')) : null,
      td(alert.kind), td(alert.summary),
      td(el('strong', null, alert.team)),
      td(el('span', { class: 'muted' }, alert.routed_by)),
      td(sentTo.length ? sentTo.join(', ') : (alert.silenced_by ? 'silenced (' + alert.silenced_by + ')' : 'not sent yet')),
      td(el('span', { title: alert.started_at }, ago(alert.started_at_unix_ms)) ),
      td(alert.resolution || ''),
      alertActions(alert));
  }

  function alertsTable(alerts, withRelease) {
    const headers = ['State', 'Severity'];
    if (withRelease) {
      headers.push('Release');
    }
    headers.push('Kind', 'Summary', 'Team', 'Routed by', 'Sent to', 'Started', 'Resolution', '');
    return table(headers, alerts.map((a) => alertRow(a, withRelease)), { class: 'alerts' });
  }

  async function releasePage(service, version) {
    const environment = query('environment');
    const envQuery = environment ? '?environment=' + enc(environment) : '';
    const base = '/api/v1/releases/' + enc(service) + '/' + enc(version);
    const [health, stats, issues, alerts] = await Promise.all([
      api(base + '/health' + envQuery),
      api(base + '/stats' + envQuery),
      api(base + '/issues' + envQuery),
      api('/api/v1/alerts?service=' + enc(service)),
    ]);
    const env = stats.release.environment;
    const d = stats.release;
    const a = health.analysis || {};
    const content = [
      el('h1', null, service + ' ', el('span', { class: 'mono' }, version), ' ', badge(health.verdict)),
      el('p', { class: 'sub' }, el('a', { href: serviceHref(service, env) }, service), ' in ' + env + ' · deployed ' + ago(d.started_at_unix_ms)),
    ];
    content.push(el('div', { class: 'card' }, kv([
      ['Verdict', badge(health.verdict)],
      ['Commit', el('span', { class: 'mono' }, d.commit || '—')],
      ['Deploy id', el('span', { class: 'mono' }, d.deploy_id || '—')],
      ['Team', d.team],
      ['Pipeline', safeLink(d.pipeline_url)],
      ['Notes', d.notes],
      ['Deployed', when(d.started_at_unix_ms) + ' (' + d.source + ')'],
      ['Baseline', a.baseline_version ? el('a', { href: releaseHref(service, a.baseline_version, env) }, a.baseline_version) : 'none'],
      ['Method', (a.method || '—') + (a.exposure_kind ? ', exposure: ' + a.exposure_kind : '')],
      ['Error rate', percent(a.new && a.new.rate) + ' (' + number(a.new && a.new.errors) + ' / ' + number(a.new && a.new.exposure) + ')' +
        (a.baseline ? ' vs ' + percent(a.baseline.rate) + ' in the baseline' : '')],
      ['Rate ratio', a.rate_ratio ? a.rate_ratio.toFixed(2) + '×' + (a.rate_ratio_lower ? ' (' + a.rate_ratio_lower.toFixed(2) + '–' + (a.rate_ratio_upper ? a.rate_ratio_upper.toFixed(2) : '∞') + ')' : '') : 'n/a'],
      ['Still needed', a.exposure_needed ? number(a.exposure_needed) + ' more exposure' : '—'],
    ])));

    content.push(el('h2', null, 'Evidence'));
    content.push(el('ul', { class: 'evidence', id: 'evidence' }, ...health.evidence.map((e) =>
      el('li', { 'data-kind': e.kind }, el('strong', null, e.kind + ': '), e.summary))));

    const versions = a.baseline_version ? [a.baseline_version, version] : [version];
    content.push(el('h2', null, 'Error rate'));
    content.push(await errorRateChart(service, env, versions));

    content.push(el('h2', null, 'Issues'));
    const flagged = new Set(a.flagged_issues || []);
    if (issues.issues.length === 0) {
      content.push(el('div', { class: 'empty' }, 'No errors in this release.'));
    } else {
      content.push(table(['Status', 'Issue', { label: 'Count', num: true }, { label: 'Instances', num: true }, 'First seen', 'Samples'],
        issues.issues.map((issue) => el('tr', { 'data-fingerprint': issue.fingerprint, 'data-status': issue.status },
          td(el('span', null, badge(issue.status), flagged.has(issue.fingerprint) ? el('div', { class: 'muted' }, 'flagged') : null)),
          td(el('div', null, el('strong', null, issue.title), el('div', { class: 'muted mono' }, issue.fingerprint),
            ...(issue.suspect_commits || []).map((s) => el('div', { class: 'muted', 'data-suspect': s.sha },
              'suspect: ', el('span', { class: 'mono' }, s.sha.slice(0, 7)), ' ' + s.subject + ' (' + s.author + ') — ' + s.reason)))),
          td(number(issue.count), true), td(String(issue.instances), true),
          td(issue.first_seen.version + ' (' + issue.first_seen.environment + ')'),
          td(samples(issue.samples)))),
        { id: 'issues' }));
    }

    const dependencies = a.dependencies || [];
    if (dependencies.length > 0) {
      const rate = (errors, calls) => calls ? percent(errors / calls) : '—';
      content.push(el('h2', null, 'Dependencies'));
      const ms = (v) => v === undefined ? '—' : v.toFixed(1) + ' ms';
      content.push(table(['Dependency', { label: 'Calls', num: true }, { label: 'Errors', num: true }, { label: 'Error rate', num: true }, { label: 'Baseline', num: true }, { label: 'p95', num: true }, { label: 'Baseline p95', num: true }, 'Finding'],
        dependencies.map((dep) => el('tr', { 'data-dependency': dep.name, 'data-regression': String(dep.regression) },
          td(el('span', { class: 'mono' }, dep.name)),
          td(number(dep.calls), true), td(number(dep.errors), true),
          td(rate(dep.errors, dep.calls), true),
          td(dep.baseline_calls ? rate(dep.baseline_errors, dep.baseline_calls) + ' of ' + number(dep.baseline_calls) : 'not called', true),
          td(ms(dep.p95_ms), true), td(ms(dep.baseline_p95_ms), true),
          td(dep.regression || dep.latency_regression
            ? el('span', null, dep.regression ? badge('regression') : null, dep.latency_regression ? badge('slower') : null)
            : (dep.log_e_value === undefined ? 'not compared' : 'no change shown')))),
        { id: 'dependencies' }));
    }

    const flags = a.flags || [];
    if (flags.length > 0) {
      const rate = (errors, requests) => requests ? percent(errors / requests) : '—';
      content.push(el('h2', null, 'Feature flags'));
      content.push(table(['Flag', 'Variant', { label: 'Requests', num: true }, { label: 'Errors', num: true }, { label: 'Error rate', num: true }, { label: 'Other variants', num: true }, 'Finding'],
        flags.map((f) => el('tr', { 'data-flag': f.flag, 'data-variant': f.variant, 'data-regression': String(f.regression) },
          td(el('span', { class: 'mono' }, f.flag)), td(el('span', { class: 'mono' }, f.variant)),
          td(number(f.requests), true), td(number(f.errors), true),
          td(rate(f.errors, f.requests), true),
          td(f.other_requests ? rate(f.other_errors, f.other_requests) + ' of ' + number(f.other_requests) : '—', true),
          td(f.regression ? badge('regression') : (f.log_e_value === undefined ? 'only variant' : 'no concentration shown')))),
        { id: 'flags' }));
    }

    const mine = alerts.alerts.filter((x) => x.release.version === version && x.release.environment === env);
    content.push(el('h2', null, 'Alerts'));
    content.push(mine.length ? alertsTable(mine, false) : el('div', { class: 'empty', id: 'no-alerts' }, 'No alerts for this release.'));
    return content;
  }

  function samples(list) {
    if (!list || list.length === 0) {
      return '—';
    }
    const details = el('details', null, el('summary', null, list.length + ' sample' + (list.length > 1 ? 's' : '')));
    for (const s of list) {
      details.appendChild(el('div', { class: 'sample' },
        el('div', null, s.message),
        s.stack ? el('pre', null, s.stack) : null,
        el('div', { class: 'muted mono' },
          'trace ' + (s.trace_id || '—') + ' · instance ' + (s.instance || '—') + ' · ' + when(s.unix_ms))));
    }
    return details;
  }

  async function alertsPage() {
    const state = query('state') || '';
    const [alerts, silences] = await Promise.all([
      api('/api/v1/alerts' + (state ? '?state=' + enc(state) : '')),
      api('/api/v1/silences'),
    ]);
    const chips = el('div', { class: 'chips' }, ...['', 'firing', 'acknowledged', 'resolved'].map((s) =>
      el('a', { href: '/alerts' + (s ? '?state=' + s : ''), class: s === state ? 'active' : null }, s || 'all')));
    const content = [el('h1', null, 'Alerts'), chips];
    content.push(alerts.alerts.length ? alertsTable(alerts.alerts, true) : el('div', { class: 'empty' }, 'No alerts.'));
    content.push(el('h2', null, 'Silences'));
    const now = Date.now();
    const active = silences.silences.filter((s) => s.ends_at_unix_ms > now);
    if (active.length === 0) {
      content.push(el('div', { class: 'empty' }, 'No active silences.'));
    } else {
      content.push(table(['Matchers', 'Comment', 'By', 'Ends', ''], active.map((s) => el('tr', { 'data-silence': s.id },
        td(el('span', { class: 'mono' }, Object.entries(s.matchers).map(([k, v]) => k + '=' + v).join(' '))),
        td(s.comment), td(s.created_by || '—'), td(when(s.ends_at_unix_ms)),
        el('td', null, el('button', {
          onclick: () => act(() => api('/api/v1/silences/' + enc(s.id), { method: 'DELETE' })),
        }, 'Remove'))))));
    }
    return content;
  }

  // ---- routing and refresh -----------------------------------------------------------

  function route() {
    const parts = window.location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts.length === 0) {
      return { nav: 'services', render: servicesPage };
    }
    if (parts[0] === 'services' && parts.length === 2) {
      return { nav: 'services', render: () => servicePage(parts[1]) };
    }
    if (parts[0] === 'releases' && parts.length === 3) {
      return { nav: 'services', render: () => releasePage(parts[1], parts[2]) };
    }
    if (parts[0] === 'alerts') {
      return { nav: 'alerts', render: alertsPage };
    }
    return { nav: null, render: async () => [el('h1', null, 'Not found'), el('p', null, el('a', { href: '/' }, 'Back to services'))] };
  }

  async function refresh() {
    if (busy) {
      return;
    }
    busy = true;
    const current = route();
    for (const id of ['services', 'alerts']) {
      const link = document.getElementById('nav-' + id);
      if (link) {
        link.className = current.nav === id ? 'active' : '';
      }
    }
    try {
      const content = await current.render();
      main.replaceChildren(...content);
      status.textContent = 'updated ' + new Date().toLocaleTimeString('en-GB');
      document.body.setAttribute('data-ready', 'true');
    } catch (error) {
      const banner = el('div', { class: 'banner', id: 'load-error' }, 'Could not load this page: ' + error.message);
      main.replaceChildren(banner);
      status.textContent = 'error at ' + new Date().toLocaleTimeString('en-GB');
      document.body.setAttribute('data-ready', 'error');
    } finally {
      busy = false;
    }
  }

  async function act(action) {
    try {
      await action();
    } catch (error) {
      status.textContent = error.message;
      return;
    }
    await refresh();
  }

  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
