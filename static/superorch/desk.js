// The support desk's charts (admin → Support desk): Chart.js (vendored) fed by the desk's
// series endpoint, refreshed every minute. No inline script: the admin runs under
// script-src 'self'. A window without escalations or ratings shows words, not zeros.
(function () {
  'use strict';
  const box = document.querySelector('.so-dash__charts');
  if (!box || typeof window.Chart === 'undefined') return;
  const url = box.dataset.seriesUrl;
  const every = Math.max(30, Number(box.dataset.refresh) || 60) * 1000;
  const colours = {
    user: '#4f46e5', words: '#0891b2', agent: '#16a34a', errors: '#dc2626', feedback: '#ca8a04', staff: '#64748b',
  };
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
      y: { ticks: { color: fg, precision: 0 }, grid: { color: grid }, beginAtZero: true },
    },
  };
  const charts = {
    escalations: new Chart(document.getElementById('so-desk-escalations'), {
      type: 'bar', data: { labels: [], datasets: [] },
      options: { ...base, scales: { ...base.scales, x: { ...base.scales.x, stacked: true }, y: { ...base.scales.y, stacked: true } } },
    }),
    csat: new Chart(document.getElementById('so-desk-csat'), {
      type: 'line', data: { labels: [], datasets: [{ label: 'mean CSAT', data: [], borderColor: '#16a34a', backgroundColor: '#16a34a', spanGaps: true }] },
      options: { ...base, plugins: { legend: { display: false } }, scales: { ...base.scales, y: { ...base.scales.y, beginAtZero: false, min: 1, max: 5 } } },
    }),
    scores: new Chart(document.getElementById('so-desk-scores'), {
      type: 'bar', data: { labels: ['1', '2', '3', '4', '5'], datasets: [{ label: 'ratings', data: [], backgroundColor: '#4f46e5' }] },
      options: { ...base, plugins: { legend: { display: false } } },
    }),
  };

  function empty(figure, yes) {
    let note = figure.querySelector('.so-desk__none');
    if (!note) {
      note = document.createElement('p');
      note.className = 'so-desk__none help';
      note.textContent = 'No data yet in this window.';
      figure.appendChild(note);
    }
    note.hidden = !yes;
    figure.querySelector('canvas').hidden = yes;
  }

  function update(data) {
    const labels = data.labels || [];
    const sources = Object.keys(data.escalations || {});
    charts.escalations.data.labels = labels;
    charts.escalations.data.datasets = sources.map((source) => ({
      label: source, data: data.escalations[source], backgroundColor: colours[source] || '#9333ea', stack: 'escalations',
    }));
    charts.csat.data.labels = labels;
    charts.csat.data.datasets[0].data = data.csat_mean || [];
    const scores = data.csat_distribution || {};
    charts.scores.data.datasets[0].data = ['1', '2', '3', '4', '5'].map((s) => scores[s] || 0);
    const rated = (data.csat_count || []).some((n) => n > 0);
    empty(charts.escalations.canvas.parentElement, sources.length === 0);
    empty(charts.csat.canvas.parentElement, !rated);
    empty(charts.scores.canvas.parentElement, !rated);
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
