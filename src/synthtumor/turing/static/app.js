// Reader page of the synthtumor reader study. Plain JS, no libraries.
// Progress lives on the server: after a reload the page asks it where we were.
"use strict";

const $ = (id) => document.getElementById(id);
const KEYS = { r: "real", s: "synthetic", u: "unsure" };
const state = { study: null, reader: null, order: [], answers: {}, index: 0, slice: 0, busy: false };

async function api(method, url, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = typeof data.detail === "string" ? data.detail : "the server refused the request";
    throw new Error(detail);
  }
  return data;
}

function show(section) {
  for (const id of ["login", "reader", "done"]) $(id).hidden = id !== section;
  $("who").hidden = section === "login";
}

function sliceUrl(caseId, k) {
  return `/api/cases/${caseId}/slices/${k}`;
}

function setSlice(k) {
  const n = state.study.slices;
  state.slice = Math.max(0, Math.min(n - 1, k));
  $("slice").src = sliceUrl(state.order[state.index], state.slice);
  $("slider").value = String(state.slice);
  $("slice-no").textContent = `${state.slice + 1} / ${n}`;
}

function showCase(index) {
  const total = state.order.length;
  if (index === null || index >= total) {
    $("done-total").textContent = String(total);
    document.body.dataset.state = "done";
    show("done");
    return;
  }
  state.index = index;
  const caseId = state.order[index];
  for (let k = 0; k < state.study.slices; k++) new Image().src = sliceUrl(caseId, k); // preload
  $("progress").textContent = `Case ${index + 1} of ${total}`;
  document.body.dataset.state = "reading";
  document.body.dataset.case = String(index + 1);
  setSlice(Math.floor(state.study.slices / 2));
  show("reader");
  $("viewer").focus();
}

function nextUnanswered(from) {
  for (let i = from; i < state.order.length; i++) if (!(state.order[i] in state.answers)) return i;
  for (let i = 0; i < from; i++) if (!(state.order[i] in state.answers)) return i;
  return null;
}

async function start(name) {
  $("login-error").textContent = "";
  try {
    const p = await api("POST", "/api/readers", { name });
    state.reader = p.reader;
    state.order = p.order;
    state.answers = p.answers;
    localStorage.setItem("reader", p.reader);
    $("reader-name").textContent = p.reader;
    showCase(p.next);
  } catch (err) {
    $("login-error").textContent = err.message;
    show("login");
  }
}

async function answer(value) {
  if (state.busy || $("reader").hidden) return;
  state.busy = true;
  $("reader-error").textContent = "";
  const caseId = state.order[state.index];
  try {
    const url = `/api/readers/${encodeURIComponent(state.reader)}/answers/${caseId}`;
    await api("PUT", url, { answer: value });
    state.answers[caseId] = value;
    showCase(nextUnanswered(state.index + 1));
  } catch (err) {
    $("reader-error").textContent = `Not saved: ${err.message}. Try again.`;
  } finally {
    state.busy = false;
  }
}

function onKey(ev) {
  if ($("reader").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const key = ev.key.toLowerCase();
  if (key in KEYS) {
    ev.preventDefault();
    answer(KEYS[key]);
  } else if (key === "arrowup" || key === "arrowright") {
    ev.preventDefault();
    setSlice(state.slice + 1);
  } else if (key === "arrowdown" || key === "arrowleft") {
    ev.preventDefault();
    setSlice(state.slice - 1);
  }
}

async function init() {
  state.study = await api("GET", "/api/study");
  const s = state.study;
  $("slider").max = String(s.slices - 1);
  $("view-info").textContent =
    `Window ${s.window_hu[0]}…${s.window_hu[1]} HU, field of view ${s.fov_mm} mm; ` +
    "patient's right on the left.";
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    start($("name").value);
  });
  $("switch").addEventListener("click", () => {
    localStorage.removeItem("reader");
    state.reader = null;
    $("name").value = "";
    document.body.dataset.state = "login";
    show("login");
    $("name").focus();
  });
  for (const btn of document.querySelectorAll("[data-answer]")) {
    btn.addEventListener("click", () => answer(btn.dataset.answer));
  }
  $("slider").addEventListener("input", () => setSlice(Number($("slider").value)));
  $("viewer").addEventListener("wheel", (ev) => {
    ev.preventDefault();
    setSlice(state.slice + (ev.deltaY < 0 ? 1 : -1));
  }, { passive: false });
  document.addEventListener("keydown", onKey);
  const saved = localStorage.getItem("reader");
  if (saved) {
    $("name").value = saved;
    await start(saved);
  } else {
    document.body.dataset.state = "login";
    show("login");
    $("name").focus();
  }
}

init().catch((err) => {
  $("login-error").textContent = `Cannot reach the study server: ${err.message}`;
});
