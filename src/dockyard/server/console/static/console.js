// Dockyard console: small progressive enhancements; every page works without them.
"use strict";

// Ask before a button marked data-confirm submits its form.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const text = button && button.getAttribute("data-confirm");
  if (text && !window.confirm(text)) event.preventDefault();
});

// "Cancel" on a confirmation page goes back where the user came from.
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[data-back]");
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});

// The live page polls its JSON every two seconds and redraws the table.
(function live() {
  const table = document.getElementById("live");
  if (!table) return;
  const source = table.getAttribute("data-source");
  const status = document.getElementById("live-window");
  const fmt = (v, digits) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
  const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
  const cell = (tag, text) => { const c = document.createElement(tag); c.textContent = text; return c; };
  const spark = (values) => {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 240 48"); svg.setAttribute("width", "240"); svg.setAttribute("height", "48");
    svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "requests per second");
    const line = document.createElementNS(ns, "polyline");
    const top = Math.max(...values, 1e-9); const last = Math.max(values.length - 1, 1);
    line.setAttribute("points", values.map((v, i) => `${(i / last * 240).toFixed(1)},${(48 - v / top * 44 - 2).toFixed(1)}`).join(" "));
    svg.appendChild(line);
    return svg;
  };
  async function refresh() {
    try {
      const response = await fetch(source, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      const body = table.tBodies[0];
      const rows = [];
      for (const [name, e] of Object.entries(data.endpoints)) {
        const tr = document.createElement("tr"); tr.className = "endpoint"; tr.dataset.endpoint = name;
        const th = cell("th", name); th.scope = "row"; tr.appendChild(th);
        tr.append(cell("td", fmt(e.rps, 2)), cell("td", fmt(e.p50_ms, 1)), cell("td", fmt(e.p99_ms, 1)), cell("td", pct(e.error_rate)));
        const s = document.createElement("td"); s.appendChild(spark(data.series[name] || [])); tr.appendChild(s);
        rows.push(tr);
        for (const [version, v] of Object.entries(e.variants)) {
          const vr = document.createElement("tr"); vr.className = "variant";
          const vh = cell("th", "\u00a0\u00a0" + version); vh.scope = "row"; vr.appendChild(vh);
          vr.append(cell("td", fmt(v.rps, 2)), cell("td", fmt(v.p50_ms, 1)), cell("td", fmt(v.p99_ms, 1)), cell("td", pct(v.error_rate)), cell("td", ""));
          rows.push(vr);
        }
      }
      if (!rows.length) {
        const tr = document.createElement("tr"); tr.className = "empty";
        const td = cell("td", "No traffic in the window yet."); td.colSpan = 6; tr.appendChild(td); rows.push(tr);
      }
      body.replaceChildren(...rows);
      if (status && data.window_s) status.textContent = `Over the last ${Math.round(data.window_s)} s; updates every 2 s.`;
    } catch (error) {
      // a missed poll is retried on the next tick
    }
  }
  window.setInterval(refresh, 2000);
  refresh();
})();

// A monitoring report not computed yet: poll its state, reload once it is ready.
(function report() {
  const state = document.getElementById("report-state");
  const source = state && state.getAttribute("data-poll");
  if (!source) return;
  async function check() {
    try {
      const response = await fetch(source, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        if (data.ready) {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // retried on the next tick
    }
    window.setTimeout(check, 1000);
  }
  window.setTimeout(check, 500);
})();
