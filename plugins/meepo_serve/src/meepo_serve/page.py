"""The status page (``GET /``): one static HTML document with its own small script, which
polls ``/pipelines`` every two seconds and reloads each pipeline's SVG plots. No network
access beyond this service is needed, and nothing third-party is embedded."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meepo serve</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #1f2937; }
h1 { font-size: 1.3em; margin: 0 0 .5em; }
#bar { margin-bottom: 1em; display: flex; gap: 1em; align-items: center; }
.pipelines { display: grid; grid-template-columns: repeat(auto-fill, minmax(680px, 1fr));
  gap: 1em; }
.pipeline { border: 1px solid #d1d5db; border-radius: 6px; padding: .7em 1em; }
.pipeline h2 { font-size: 1.05em; margin: 0 0 .4em; display: flex; gap: .6em;
  align-items: center; }
.state { font-size: .8em; padding: .1em .5em; border-radius: 4px; background: #e5e7eb; }
.state.running { background: #dcfce7; } .state.paused { background: #fef9c3; }
.state.failed, .state.invalid, .state.restarting { background: #fee2e2; }
.numbers { display: flex; gap: 1.2em; flex-wrap: wrap; margin: .3em 0; }
.numbers b { font-variant-numeric: tabular-nums; }
.plots { display: flex; gap: .5em; flex-wrap: wrap; }
.error { color: #b91c1c; white-space: pre-wrap; font-size: .9em; }
progress { width: 14em; }
button { margin-right: .4em; }
</style></head>
<body>
<h1>meepo serve</h1>
<div id="bar">
  <label>Token <input id="token" type="password" autocomplete="off" size="24"></label>
  <span id="message" role="status"></span>
  <span id="updated"></span>
</div>
<div class="pipelines" id="pipelines"></div>
<template id="card">
<section class="pipeline">
  <h2><span class="name"></span><span class="state"></span></h2>
  <div class="numbers">
    <span>lag <b class="lag"></b> s</span>
    <span>events/s (1 min) <b class="rate1"></b></span>
    <span>events/s (5 min) <b class="rate5"></b></span>
    <span>events <b class="events"></b></span>
    <span>restarts <b class="restarts"></b></span>
    <span>dead letters <b class="dead"></b></span>
  </div>
  <div class="plots"><img class="plot-lag" alt="lag, last hour">
    <img class="plot-rate" alt="events per second, last hour"></div>
  <div class="snapshots"></div>
  <div class="error"></div>
  <div><button class="pause">Pause</button><button class="resume">Resume</button>
    <button class="snapshot">Snapshot</button></div>
</section>
</template>
<script>
"use strict";
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("meepo-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("meepo-token",
  tokenInput.value));
const cards = new Map();
let tick = 0;

function say(text) { document.getElementById("message").textContent = text; }

async function act(name, action, body) {
  const response = await fetch(`pipelines/${encodeURIComponent(name)}/${action}`, {
    method: "POST",
    headers: {"Authorization": `Bearer ${tokenInput.value}`,
              "Content-Type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  say(response.ok ? `${name}: ${action} done` : `${name}: ${action} refused: ${answer.error}`);
  refresh();
}

function card(name) {
  if (cards.has(name)) return cards.get(name);
  const node = document.getElementById("card").content.firstElementChild.cloneNode(true);
  node.dataset.pipeline = name;
  node.querySelector(".name").textContent = name;
  node.querySelector(".pause").onclick = () => act(name, "pause");
  node.querySelector(".resume").onclick = () => act(name, "resume");
  node.querySelector(".snapshot").onclick = () => act(name, "snapshots", {tables: []});
  document.getElementById("pipelines").appendChild(node);
  cards.set(name, node);
  return node;
}

function show(p) {
  const node = card(p.name);
  const set = (cls, text) => { node.querySelector(cls).textContent = text; };
  const state = node.querySelector(".state");
  state.textContent = p.state; state.className = `state ${p.state}`;
  set(".lag", p.lag_seconds === null ? "n/a" : p.lag_seconds.toFixed(2));
  set(".rate1", p.events_per_second_1m.toFixed(1));
  set(".rate5", p.events_per_second_5m.toFixed(1));
  set(".events", String(p.events_total));
  set(".restarts", String(p.restarts));
  set(".dead", String(p.dead_letters));
  set(".error", p.last_error ? `last error (${p.last_error_at}): ${p.last_error}` : "");
  const base = `pipelines/${encodeURIComponent(p.name)}/plots`;
  node.querySelector(".plot-lag").src = `${base}/lag.svg?t=${tick}`;
  node.querySelector(".plot-rate").src = `${base}/rate.svg?t=${tick}`;
  const snaps = node.querySelector(".snapshots");
  snaps.replaceChildren(...p.snapshots.filter(j => j.state !== "done" || j.progress !== null)
    .slice(0, 4).map(job => {
      const row = document.createElement("div");
      const bar = document.createElement("progress");
      bar.max = 1; bar.value = job.progress === null ? 0 : job.progress;
      row.append(bar, ` ${job.state}: ${job.text}`);
      return row;
    }));
}

async function refresh() {
  tick += 1;
  try {
    const response = await fetch("pipelines");
    const data = await response.json();
    const names = new Set(data.pipelines.map(p => p.name));
    for (const [name, node] of cards) {
      if (!names.has(name)) { node.remove(); cards.delete(name); }
    }
    data.pipelines.forEach(show);
    document.getElementById("updated").textContent =
      `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `service unreachable: ${error}`;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
"""
