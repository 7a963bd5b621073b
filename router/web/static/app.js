// Omniroute supervisor view: applies server-sent snapshots, ticks waits, filters agents.
// No framework, no build step; the server renders every fragment (already escaped).
(function () {
  "use strict";
  var offsetMs = 0; // server clock minus this browser's clock

  function fmt(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " m";
  }

  function tick() {
    var now = Date.now() + offsetMs;
    document.querySelectorAll(".tick[data-since]").forEach(function (el) {
      el.textContent = fmt((now - Number(el.dataset.since)) / 1000);
    });
  }

  function currentFilters() {
    var form = document.getElementById("filters");
    if (!form) return { q: "", skill: "", state: "" };
    return {
      q: form.elements.q.value.trim().toLowerCase(),
      skill: form.elements.skill.value.trim().toLowerCase(),
      state: form.elements.state.value,
    };
  }

  function applyFilters() {
    var f = currentFilters();
    var shown = 0;
    document.querySelectorAll("tr.agent").forEach(function (row) {
      var ok =
        (!f.q || row.dataset.name.indexOf(f.q) >= 0) &&
        (!f.skill || row.dataset.skills.indexOf(" " + f.skill + " ") >= 0) &&
        (!f.state || row.dataset.state === f.state);
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    document.body.dataset.agentsShown = String(shown);
  }

  function keepFiltersInUrl() {
    var f = currentFilters();
    var params = new URLSearchParams(window.location.search);
    ["q", "skill", "state"].forEach(function (k) {
      if (f[k]) params.set(k, f[k]);
      else params.delete(k);
    });
    params.delete("done");
    var query = params.toString();
    history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    document.querySelectorAll("input[name=back]").forEach(function (el) {
      var back = new URLSearchParams(params);
      back.delete("wallboard");
      el.value = back.toString();
    });
  }

  function setConn(state, text) {
    var el = document.getElementById("conn");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text;
  }

  function apply(data) {
    offsetMs = data.now - Date.now();
    Object.keys(data.f).forEach(function (key) {
      var el = document.getElementById("frag-" + key);
      if (el) el.innerHTML = data.f[key];
    });
    applyFilters();
    tick();
    document.body.dataset.version = String(data.v);
    document.body.dataset.appliedAt = String(Date.now());
    setConn("live", "live");
  }

  function connect() {
    var source = new EventSource("/events");
    source.addEventListener("snapshot", function (e) {
      apply(JSON.parse(e.data));
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, or a proxy error): try again a little later.
        setConn("down", "disconnected: retrying…");
        setTimeout(connect, 2000);
      } else {
        setConn("reconnecting", "reconnecting…");
      }
    };
  }

  function pick(event) {
    var row = event.target.closest("tr.agent");
    if (!row) return;
    ["skill-agent", "state-agent"].forEach(function (id) {
      var input = document.getElementById(id);
      if (input) input.value = row.dataset.agent;
    });
    document.querySelectorAll("tr.agent.picked").forEach(function (r) {
      r.classList.remove("picked");
    });
    row.classList.add("picked");
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("frag-agents")) return;
    var filters = document.getElementById("filters");
    if (filters) {
      filters.addEventListener("input", function () {
        applyFilters();
        keepFiltersInUrl();
      });
      filters.addEventListener("submit", function (e) {
        e.preventDefault();
        applyFilters();
        keepFiltersInUrl();
      });
    }
    var agents = document.getElementById("frag-agents");
    agents.addEventListener("click", pick);
    applyFilters();
    tick();
    setInterval(tick, 1000);
    connect();
  });
})();
