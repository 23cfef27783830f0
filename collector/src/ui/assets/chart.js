// Small SVG charts for the Bellwether UI: time series lines with points, deploy markers
// and verdict bands. Builds DOM nodes only (no HTML strings); every label is set with
// textContent.
'use strict';

(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#2b6cb0', '#805ad5', '#dd6b20', '#0987a0', '#d53f8c', '#975a16', '#4a5568'];

  function node(tag, attrs) {
    const el = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      el.setAttribute(key, String(value));
    }
    return el;
  }

  function text(x, y, content, attrs) {
    const el = node('text', Object.assign({ x: x, y: y }, attrs || {}));
    el.textContent = content;
    return el;
  }

  function clockTime(ms) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, '0');
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function niceMax(value) {
    if (!(value > 0)) {
      return 0.01;
    }
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * exp >= value) {
        return step * exp;
      }
    }
    return 10 * exp;
  }

  // options: { series: [{ name, points: [{ t, v }] }], markers: [{ t, label }],
  //   bands: [{ name, segments: [{ from, to, verdict }] }], from, to, format(v), title }
  function timeChart(options) {
    const width = 960;
    const bandHeight = 14;
    const bands = options.bands || [];
    const plotTop = 24;
    const plotHeight = 200;
    const left = 64;
    const right = 16;
    const bandsTop = plotTop + plotHeight + 28;
    const height = bandsTop + bands.length * (bandHeight + 6) + 8;
    const from = options.from;
    const to = Math.max(options.to, from + 1000);
    const format = options.format || ((v) => String(v));
    let max = 0;
    for (const s of options.series) {
      for (const p of s.points) {
        max = Math.max(max, p.v);
      }
    }
    max = niceMax(max * 1.1);
    const x = (t) => left + ((t - from) / (to - from)) * (width - left - right);
    const y = (v) => plotTop + plotHeight - (v / max) * plotHeight;

    const svg = node('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      class: 'chart',
      role: 'img',
      'aria-label': options.title || 'chart',
    });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      svg.appendChild(node('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      svg.appendChild(text(left - 6, y(v) + 4, format(v), { 'text-anchor': 'end' }));
    }
    for (let i = 0; i <= 5; i++) {
      const t = from + ((to - from) * i) / 5;
      svg.appendChild(text(x(t), plotTop + plotHeight + 16, clockTime(t), { 'text-anchor': 'middle' }));
    }
    svg.appendChild(node('line', {
      class: 'axis', x1: left, x2: width - right, y1: plotTop + plotHeight, y2: plotTop + plotHeight,
    }));

    let lastLabelX = -Infinity;
    let row = 0;
    for (const m of (options.markers || []).slice().sort((a, b) => a.t - b.t)) {
      if (m.t < from || m.t > to) {
        continue;
      }
      // Deploys close together get their labels on alternating rows.
      row = x(m.t) - lastLabelX < 90 ? (row + 1) % 3 : 0;
      lastLabelX = x(m.t);
      const g = node('g', { class: 'marker', 'data-version': m.label });
      g.appendChild(node('line', { class: 'deploy', x1: x(m.t), x2: x(m.t), y1: plotTop - 6, y2: plotTop + plotHeight }));
      g.appendChild(text(x(m.t) + 4, plotTop + 10 + row * 13, m.label, { class: 'deploy-label' }));
      svg.appendChild(g);
    }

    options.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const g = node('g', { class: 'series', 'data-series': s.name });
      const points = s.points.filter((p) => p.t >= from && p.t <= to);
      if (points.length > 1) {
        const d = points.map((p, j) => (j === 0 ? 'M' : 'L') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1)).join(' ');
        g.appendChild(node('path', { class: 'line', d: d, stroke: color }));
      }
      for (const p of points) {
        const c = node('circle', {
          class: 'point', cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3, fill: color,
          'data-t': p.t, 'data-v': p.v,
        });
        const title = node('title');
        title.textContent = s.name + ' ' + clockTime(p.t) + ': ' + format(p.v);
        c.appendChild(title);
        g.appendChild(c);
      }
      svg.appendChild(g);
    });

    bands.forEach((band, i) => {
      const top = bandsTop + i * (bandHeight + 6);
      svg.appendChild(text(left - 6, top + bandHeight - 3, band.name, { 'text-anchor': 'end' }));
      for (const seg of band.segments) {
        const a = Math.max(seg.from, from);
        const b = Math.min(seg.to, to);
        if (b <= a) {
          continue;
        }
        const r = node('rect', {
          class: 'seg seg-' + seg.verdict, x: x(a).toFixed(1), y: top,
          width: Math.max(1, x(b) - x(a)).toFixed(1), height: bandHeight, 'data-verdict': seg.verdict,
        });
        const title = node('title');
        title.textContent = band.name + ' ' + seg.verdict + ' from ' + clockTime(seg.from);
        r.appendChild(title);
        svg.appendChild(r);
      }
    });
    return svg;
  }

  function colorOf(index) {
    return PALETTE[index % PALETTE.length];
  }

  window.BellwetherChart = { timeChart: timeChart, colorOf: colorOf };
})();
