// edge-inspect operator page: plain JavaScript, no build step, no CDN (plants are often offline).
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

let session = {auth: false, user: "local", role: "operator", csrf: ""};

async function api(path, body) {
  const opts = body === undefined ? {} : {method: "POST", body: JSON.stringify(body),
                                          headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf}};
  let res;
  try { res = await fetch(path, opts); } catch (err) {
    throw {error: "the service does not answer (connection lost?); your edits are kept on this page"};
  }
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && data.login) { showLogin(); }
  if (!res.ok) throw data;
  return data;
}

// ---- login (only when the page is exposed beyond loopback and ops.users is set) ----
function showLogin() { const d = $("#login"); if (!d.open) d.showModal(); }
function applySession(s) {
  session = {auth: s.auth, user: s.user, role: s.role, csrf: s.csrf || ""};
  $("#whoami").textContent = s.auth && s.user ? `${s.user} (${s.role})` : "";
  $("#logout").hidden = !(s.auth && s.user);
  $("#operator-label").hidden = s.auth;  // with logins, changes are recorded under the login name
  for (const id of ["#preview", "#activate", "#add-category", "#teach", "#keep", "#memory-rollback", "#teach-ticked"])
    $(id).disabled = s.role !== "operator";
}
$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const s = await api("/api/login", {name: $("#login-name").value, password: $("#login-password").value});
    applySession({auth: true, ...s}); $("#login").close(); $("#login-error").textContent = "";
    await loadPrompts(); refreshState();
  } catch (err) { $("#login-error").textContent = err.error || "login failed"; }
});
$("#logout").addEventListener("click", async () => { await api("/api/logout", {}); location.reload(); });

function say(text, error = false) {
  const m = $("#edit-message");
  m.textContent = text; m.classList.toggle("error", error);
}

// ---- tabs ----
for (const b of document.querySelectorAll("nav button")) {
  b.addEventListener("click", () => {
    document.querySelectorAll("nav button, .tab").forEach(x => x.classList.remove("on"));
    b.classList.add("on"); $("#" + b.dataset.tab).classList.add("on");
    if (b.dataset.tab === "history") loadResults();
    if (b.dataset.tab === "prompts") loadVersions();
    if (b.dataset.tab === "good") loadMemory();
  });
}

// ---- live view ----
async function refreshState() {
  let s;
  try { s = await api("/api/state"); $("#connection").textContent = ""; }
  catch (err) { $("#connection").textContent = err.error || "connection lost"; return; }
  $("#health").textContent = s.healthy ? "healthy" : "degraded";
  $("#health").className = "badge " + (s.healthy ? "healthy" : "unhealthy");
  $("#ps-name").textContent = s.prompt_set.name; $("#ps-version").textContent = s.prompt_set.version;
  $("#mem-version").textContent = s.memory ? s.memory.version : "none";
  $("#mem-images").textContent = s.memory ? `(${s.memory.images} good parts)` : "";
  $("#backend").textContent = s.backend || "";
  renderHealth(s.health);
  const grid = $("#cameras");
  for (const [name, cam] of Object.entries(s.cameras)) {
    let card = document.getElementById("cam-" + name);
    if (!card) {
      card = el("div", {class: "camera", id: "cam-" + name}, el("h3", {}, name), el("img", {alt: name}),
                el("div", {class: "info"}));
      grid.append(card);
      $("#f-camera").append(el("option", {}, name)); $("#teach-camera").append(el("option", {}, name));
    }
    const where = $("#show-where").checked ? "&where=1" : "";
    $("img", card).src = `/api/cameras/${encodeURIComponent(name)}/frame.jpg?t=${Date.now()}${where}`;
    const r = cam.result;
    const info = $(".info", card); info.replaceChildren(
      el("div", {}, `camera ${cam.state}`, cam.last_error ? ` (${cam.last_error})` : ""),
      r ? el("div", {}, el("span", {class: "verdict " + r.verdict}, r.verdict), ` ${r.category} ${r.score.toFixed(3)}`,
             el("small", {}, ` set ${r.version}, seq ${r.seq}`)) : el("div", {}, "no result yet"),
      r ? el("div", {class: "top"}, r.top.map(([k, v]) => `${k} ${v.toFixed(3)}`).join(" · ")) : "");
  }
}

function renderHealth(h) {
  $("#health-detail").textContent = JSON.stringify(h, null, 2);
  const problems = Object.entries(h.problems);
  $("#health-summary").textContent = problems.length ? `${problems.length} problem(s)` : "Everything is healthy";
  $("#health-problems").replaceChildren(...problems.map(([k, v]) => el("li", {class: "field-error"}, `${k}: ${v}`)));
  $("#health-cameras tbody").replaceChildren(...Object.entries(h.cameras).map(([n, c]) => el("tr", {},
    el("td", {}, n), el("td", {}, c.state), el("td", {}, c.frames), el("td", {}, c.reconnects),
    el("td", {}, c.last_error || ""))));
  const facts = [`encoder ${h.encoder.backend || "-"}, inference loop last turned ${h.encoder.stalled_s} s ago`,
                 `result queue ${h.result_queue}`];
  if (h.mqtt) facts.push(`MQTT ${h.mqtt.connected ? "connected" : "NOT connected"}`);
  if (h.outbox) facts.push(`outbox backlog ${h.outbox.backlog}, oldest undelivered ${h.outbox.oldest_undelivered_s ?? 0} s`);
  $("#health-facts").textContent = facts.join(" · ");
}

// ---- prompt editor ----
let active = null;
function categoryRow(c = {name: "", prompts: [""], ok: false, threshold: null}, i = 0) {
  const tr = el("tr", {},
    el("td", {}, el("input", {class: "c-name", value: c.name, "data-field": `categories.${i}.name`})),
    el("td", {}, el("textarea", {class: "c-prompts", rows: 2, "data-field": `categories.${i}.prompts`})),
    el("td", {}, el("input", {class: "c-ok", type: "checkbox"})),
    el("td", {}, el("input", {class: "c-threshold", type: "number", step: "0.01", min: 0, max: 1,
                              value: c.threshold ?? "", "data-field": `categories.${i}.threshold`})),
    el("td", {}, el("input", {class: "c-examples", type: "file", accept: "image/*", multiple: ""}),
       el("span", {class: "c-examples-count"}, c.exemplars ? "has examples" : "")),
    el("td", {}, el("button", {onclick: () => { tr.remove(); renumber(); }}, "Remove")));
  $(".c-prompts", tr).value = (c.prompts || []).join("\n");
  $(".c-ok", tr).checked = !!c.ok;
  $(".c-examples", tr).addEventListener("change", ev => upload(tr, ev.target.files));
  return tr;
}
function renumber() {
  document.querySelectorAll("#categories tbody tr").forEach((tr, i) => {
    $(".c-name", tr).dataset.field = `categories.${i}.name`;
    $(".c-prompts", tr).dataset.field = `categories.${i}.prompts`;
    $(".c-threshold", tr).dataset.field = `categories.${i}.threshold`;
  });
}
function fill(set) {
  $("#set-name").value = set.name;
  $("#templates").value = set.templates.join("\n");
  $("#threshold").value = set.decision.threshold; $("#margin").value = set.decision.uncertain_margin;
  const body = $("#categories tbody"); body.replaceChildren();
  set.categories.forEach((c, i) => body.append(categoryRow(c, i)));
}
function edited() {
  const set = structuredClone(active);
  set.name = $("#set-name").value;
  set.templates = $("#templates").value.split("\n").map(s => s.trim()).filter(Boolean);
  set.decision.threshold = parseFloat($("#threshold").value);
  set.decision.uncertain_margin = parseFloat($("#margin").value);
  const old = Object.fromEntries(active.categories.map(c => [c.name, c]));
  set.categories = [...document.querySelectorAll("#categories tbody tr")].map(tr => {
    const name = $(".c-name", tr).value.trim();
    const t = $(".c-threshold", tr).value;
    const c = {...(old[name] || {}), name, ok: $(".c-ok", tr).checked, threshold: t === "" ? null : parseFloat(t),
               prompts: $(".c-prompts", tr).value.split("\n").map(s => s.trim()).filter(Boolean)};
    if (exemplarFolders[name]) c.exemplars = exemplarFolders[name];
    return c;
  });
  const names = new Set(set.categories.map(c => c.name));
  set.decision.thresholds = Object.fromEntries(Object.entries(set.decision.thresholds || {})
                                               .filter(([k]) => names.has(k)));
  return set;
}
function clearErrors() {
  document.querySelectorAll(".field-error").forEach(e => e.remove());
  document.querySelectorAll("[data-invalid]").forEach(e => e.removeAttribute("data-invalid"));
}
function showErrors(err) {
  clearErrors();
  say(err.error || "failed", true);
  for (const f of err.fields || []) {
    const field = document.querySelector(`[data-field="${f.field}"]`) ||
                  document.querySelector(`[data-field="${f.field.split(".").slice(0, 3).join(".")}"]`);
    const msg = el("div", {class: "field-error"}, `${f.field}: ${f.message}`);
    if (field) { field.setAttribute("data-invalid", ""); field.after(msg); } else $("#edit-message").after(msg);
  }
}
async function loadPrompts() {
  const p = await api("/api/prompts");
  active = p.active; fill(active); renderVersions(p.history, p.version);
}
function renderVersions(history, current) {
  const body = $("#versions tbody"); body.replaceChildren();
  for (const h of history) {
    body.append(el("tr", {}, el("td", {}, h.ts), el("td", {}, el("code", {}, h.version)), el("td", {}, h.name),
      el("td", {}, h.source),
      el("td", {}, h.version === current ? "active" :
        el("button", {class: "rollback", "data-version": h.version, onclick: () => rollback(h.version)}, "Roll back"))));
  }
}
async function loadVersions() { try { const p = await api("/api/prompts"); renderVersions(p.history, p.version); } catch (e) {} }
function operator() {
  if (session.auth) return session.user;
  const name = $("#operator").value.trim();
  if (!name) {
    say("enter your name first (top right): every change is recorded with it", true);
    teachSay("enter your name first (top right): every change is recorded with it", true);
    $("#operator").focus();
  }
  return name;
}
$("#add-category").addEventListener("click", () => {
  $("#categories tbody").append(categoryRow(undefined, $("#categories tbody").children.length));
});
$("#reset").addEventListener("click", () => { clearErrors(); fill(active); say("edits discarded"); });
$("#preview").addEventListener("click", async () => {
  clearErrors(); say("scoring the current frames ...");
  try {
    const r = await api("/api/prompts/preview", {prompt_set: edited()});
    const rows = Object.entries(r.cameras).map(([cam, v]) => el("tr", {}, el("td", {}, `${cam} (now)`),
      el("td", {}, `${v.active.verdict} ${v.active.category} ${v.active.score}`),
      el("td", {}, el("span", {class: "verdict " + v.candidate.verdict}, v.candidate.verdict),
         ` ${v.candidate.category} ${v.candidate.score}`)));
    const cell = v => el("td", {}, el("span", {class: "verdict " + v.verdict}, v.verdict), ` ${v.category} ${v.score}`);
    rows.push(...r.recent_defects.map(d => el("tr", {},
      el("td", {}, `seq ${d.seq} (${d.camera})`, d.snapshot ? el("img", {class: "thumb", src: `/api/evidence/${d.snapshot}`})
                                                          : ""), cell(d.active), cell(d.candidate))));
    $("#preview-result").replaceChildren(el("table", {id: "preview-table"},
      el("thead", {}, el("tr", {}, el("th", {}, "frame"), el("th", {}, "active set"),
         el("th", {}, `edited set (${r.version})`))), el("tbody", {}, ...rows)));
    say(`preview of version ${r.version}: not activated`);
  } catch (err) { showErrors(err); }
});
$("#activate").addEventListener("click", async () => {
  const who = operator(); if (!who) return;
  clearErrors();
  try {
    const r = await api("/api/prompts/activate", {prompt_set: edited(), operator: who});
    say(`activated: version ${r.version} is live`); await loadPrompts(); refreshState();
  } catch (err) { showErrors(err); }
});
async function rollback(version) {
  const who = operator(); if (!who) return;
  try {
    const r = await api("/api/prompts/rollback", {version, operator: who});
    say(`rolled back: version ${r.version} is live`); await loadPrompts(); refreshState();
  } catch (err) { showErrors(err); }
}

const exemplarFolders = {};
async function upload(tr, files) {
  const name = $(".c-name", tr).value.trim();
  const count = $(".c-examples-count", tr);
  for (const file of files) {
    let res, data;
    try {
      res = await fetch(`/api/exemplars/${encodeURIComponent(name)}`, {method: "POST", body: file,
        headers: {"Content-Type": file.type || "application/octet-stream", "X-CSRF-Token": session.csrf}});
      data = await res.json().catch(() => ({}));
    } catch (err) { data = {error: "the service does not answer"}; res = {ok: false}; }
    if (!res.ok) { count.textContent = `${file.name}: ${data.error}`; count.classList.add("field-error"); return; }
    exemplarFolders[name] = data.folder;
    count.textContent = `${data.count} examples (used once you preview or activate)`;
    count.classList.remove("field-error");
  }
}

// ---- history ----
async function loadResults() {
  const q = new URLSearchParams({limit: 100});
  for (const k of ["camera", "verdict", "category"]) { const v = $("#f-" + k).value.trim(); if (v) q.set(k, v); }
  let rows;
  try { rows = await api("/api/results?" + q); } catch (err) { return; }
  const categories = active ? active.categories.map(c => c.name) : [];
  $("#results tbody").replaceChildren(...rows.map(r => {
    const mark = el("select", {class: "mark", "data-id": r.id}, el("option", {value: ""}, "-"),
                    ...categories.map(c => el("option", {}, c)));
    mark.value = marks[r.id] || "";
    mark.addEventListener("change", () => { if (mark.value) marks[r.id] = mark.value; else delete marks[r.id]; });
    return el("tr", {},
      el("td", {}, r.seq), el("td", {}, r.ts), el("td", {}, r.camera),
      el("td", {}, el("span", {class: "verdict " + r.verdict}, r.verdict)), el("td", {}, r.category),
      el("td", {}, r.score.toFixed(3)),
      el("td", {}, r.anomaly ? `${(r.anomaly.score / r.anomaly.threshold).toFixed(2)}x` : "-"),
      el("td", {}, el("code", {}, r.prompt_set.version)),
      el("td", {}, r.snapshot ? el("a", {href: `/api/evidence/${r.snapshot}`, target: "_blank"},
        el("img", {class: "thumb", src: `/api/evidence/${r.snapshot}`, alt: r.snapshot, loading: "lazy"})) : ""),
      el("td", {}, mark),
      el("td", {}, el("input", {type: "checkbox", class: "teach-tick", "data-id": r.id})));
  }));
}
const marks = {};
$("#propose").addEventListener("click", async () => {
  try {
    const r = await api("/api/thresholds", {labels: marks});
    $("#propose-message").textContent = `${r.frames} marked frames scored by version ${r.version}`;
    $("#propose-message").classList.remove("error");
    const rows = r.proposals.map(p => el("tr", {}, el("td", {}, p.category), el("td", {}, p.threshold.toFixed(3)),
      el("td", {}, p.precision.toFixed(2)), el("td", {}, p.recall.toFixed(2)), el("td", {}, p.positives)));
    $("#proposals").replaceChildren(el("table", {id: "proposal-table"}, el("thead", {}, el("tr", {},
      ...["category", "threshold", "precision", "recall", "marked"].map(h => el("th", {}, h)))),
      el("tbody", {}, ...rows)), el("button", {id: "use-proposals", onclick: () => {
        for (const p of r.proposals) {
          const tr = [...document.querySelectorAll("#categories tbody tr")]
            .find(t => $(".c-name", t).value.trim() === p.category);
          if (tr) $(".c-threshold", tr).value = p.threshold.toFixed(3);
        }
        say("thresholds copied into the editor: preview, then activate"); document.querySelector("nav button[data-tab=prompts]").click();
      }}, "Use these in the editor"));
    if (r.anomaly) $("#proposals").append(el("p", {id: "anomaly-proposal"},
      `Anomaly threshold: ${r.anomaly.ratio.toFixed(2)}x the current one would separate your marks best ` +
      `(precision ${r.anomaly.precision.toFixed(2)}, recall ${r.anomaly.recall.toFixed(2)}): set memory.margin to ` +
      `${r.anomaly.margin}.`));
  } catch (err) {
    $("#propose-message").textContent = err.error || "failed"; $("#propose-message").classList.add("error");
  }
});
for (const id of ["#f-camera", "#f-verdict", "#f-category"]) $(id).addEventListener("change", loadResults);

// ---- the good-part memory ----
function teachSay(text, error = false) {
  const m = $("#teach-message"); m.textContent = text; m.classList.toggle("error", error);
}
async function loadMemory() {
  try { $("#memory-status").textContent = JSON.stringify(await api("/api/memory"), null, 2); } catch (e) {}
}
let staged = null;
function showStaged(r) {
  staged = r.stage;
  $("#staged").replaceChildren(...r.urls.map(u => el("img", {class: "thumb staged", src: u})));
  $("#staged-actions").hidden = false;
  teachSay(`${r.files.length} frames: look at them, then keep them if they are all good parts`);
}
async function stage(body) {
  teachSay("collecting frames ...");
  try { showStaged(await api("/api/memory/teach", body)); }
  catch (err) { teachSay(err.error || "failed", true); }
}
$("#teach").addEventListener("click", () =>
  stage({camera: $("#teach-camera").value, frames: parseInt($("#teach-frames").value, 10)}));
$("#teach-ticked").addEventListener("click", () => {
  const ids = [...document.querySelectorAll(".teach-tick:checked")].map(t => t.dataset.id);
  document.querySelector("nav button[data-tab=good]").click();
  stage({ids});
});
$("#discard").addEventListener("click", () => {
  staged = null; $("#staged").replaceChildren(); $("#staged-actions").hidden = true; teachSay("discarded");
});
$("#keep").addEventListener("click", async () => {
  const who = operator(); if (!who || !staged) return;
  teachSay("building the memory from them ...");
  try {
    const r = await api("/api/memory/keep", {stage: staged, operator: who});
    teachSay(`memory ${r.memory ? r.memory.version : "-"} is live (prompt set ${r.version})`);
    $("#staged").replaceChildren(); $("#staged-actions").hidden = true; staged = null;
    await loadPrompts(); refreshState(); loadMemory();
  } catch (err) { teachSay(err.error || "failed", true); }
});
$("#memory-rollback").addEventListener("click", async () => {
  const who = operator(); if (!who) return;
  try {
    const r = await api("/api/memory/rollback", {operator: who});
    teachSay(`rolled back: prompt set ${r.version}, memory ${r.memory ? r.memory.version : "none"}`);
    await loadPrompts(); refreshState(); loadMemory();
  } catch (err) { teachSay(err.error || "failed", true); }
});

api("/api/me").then(s => {
  if (s.auth && !s.user) { showLogin(); return; }
  applySession(s);
  loadPrompts().catch(err => say(err.error || "cannot load the prompt set", true));
  refreshState();
}).catch(() => {});
setInterval(() => { if (session.user) refreshState(); }, 1000);
