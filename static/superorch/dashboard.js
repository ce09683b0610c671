// The admin dashboard's charts: Chart.js (vendored) fed by the series endpoint, refreshed
// every few seconds. No inline script: the admin runs under script-src 'self'.
(function () {
  'use strict';
  const box = document.querySelector('.so-dash__charts');
  if (!box || typeof window.Chart === 'undefined') return;
  const url = box.dataset.seriesUrl;
  const every = Math.max(5, Number(box.dataset.refresh) || 10) * 1000;
  const palette = ['#4f46e5', '#0891b2', '#16a34a', '#ca8a04', '#dc2626', '#9333ea', '#db2777', '#64748b'];
  const style = getComputedStyle(document.documentElement);
  const fg = style.getPropertyValue('--body-quiet-color').trim() || '#666';
  const grid = style.getPropertyValue('--hairline-color').trim() || '#ddd';
  const base = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { labels: { color: fg, boxWidth: 12 } } },
    scales: {
      x: { ticks: { color: fg, maxRotation: 0, autoSkip: true }, grid: { color: grid } },
      y: { ticks: { color: fg }, grid: { color: grid }, beginAtZero: true },
    },
  };
  const charts = {
    runs: new Chart(document.getElementById('so-chart-runs'), {
      type: 'bar', data: { labels: [], datasets: [] },
      options: { ...base, scales: { ...base.scales, x: { ...base.scales.x, stacked: true }, y: { ...base.scales.y, stacked: true, ticks: { color: fg, precision: 0 } } } },
    }),
    errors: new Chart(document.getElementById('so-chart-errors'), {
      type: 'line', data: { labels: [], datasets: [{ label: 'error rate', data: [], borderColor: '#dc2626', backgroundColor: '#dc2626', spanGaps: true }] },
      options: { ...base, plugins: { legend: { display: false } }, scales: { ...base.scales, y: { ...base.scales.y, max: 1, ticks: { color: fg, callback: (v) => `${Math.round(v * 100)} %` } } } },
    }),
    latency: new Chart(document.getElementById('so-chart-latency'), {
      type: 'line', data: { labels: [], datasets: [{ label: 'p95 ms', data: [], borderColor: '#4f46e5', backgroundColor: '#4f46e5', spanGaps: true }] },
      options: { ...base, plugins: { legend: { display: false } } },
    }),
  };

  function update(data) {
    const labels = data.labels || [];
    const agents = Object.keys(data.runs || {});
    charts.runs.data.labels = labels;
    charts.runs.data.datasets = agents.map((slug, i) => ({
      label: slug, data: data.runs[slug], backgroundColor: palette[i % palette.length], stack: 'runs',
    }));
    charts.errors.data.labels = labels;
    charts.errors.data.datasets[0].data = data.error_rate || [];
    charts.latency.data.labels = labels;
    charts.latency.data.datasets[0].data = data.p95_ms || [];
    for (const chart of Object.values(charts)) chart.update();
  }

  async function poll() {
    try {
      const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (response.ok) update(await response.json());
    } catch (err) {
      // A missed refresh is retried on the next tick.
    }
  }
  poll();
  setInterval(() => { if (!document.hidden) poll(); }, every);
})();
