// The providers page: with the admin key (kept in sessionStorage), lists the
// providers with their status, queue and answering stats.
"use strict";

(function () {
  const { api, el, parseDuration, formatMillis, formatTime } = window.Rydes;
  const STORAGE_KEY = "rydes.adminKey";
  const AUTO_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const keyForm = $("key-form");
  const keyInput = $("admin-key");
  const keyErr = $("key-err");
  const forgetBtn = $("forget-key");
  const fleet = $("fleet");
  const fleetStatus = $("fleet-status");
  const list = $("providers");
  const totals = $("totals");
  const refreshBtn = $("refresh");
  const auto = $("auto");

  let autoTimer = null;
  let loading = false;

  function storedKey() {
    try {
      return sessionStorage.getItem(STORAGE_KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(STORAGE_KEY, key);
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch (_) {
      /* storage disabled: the key lives in the field only */
    }
  }

  function showKeyError(message) {
    keyErr.textContent = message;
    keyErr.hidden = !message;
    if (message) keyInput.setAttribute("aria-invalid", "true");
    else keyInput.removeAttribute("aria-invalid");
  }

  keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = keyInput.value.trim();
    if (!key) {
      showKeyError("Enter the admin key.");
      keyInput.focus();
      return;
    }
    storeKey(key);
    load();
  });

  forgetBtn.addEventListener("click", () => {
    storeKey("");
    keyInput.value = "";
    forgetBtn.hidden = true;
    fleet.hidden = true;
    setAuto(false);
    keyInput.focus();
  });

  refreshBtn.addEventListener("click", () => load());
  auto.addEventListener("change", () => setAuto(auto.checked));

  function setAuto(on) {
    auto.checked = on;
    // Announce manual loads only, not one every few seconds.
    fleetStatus.setAttribute("aria-live", on ? "off" : "polite");
    clearInterval(autoTimer);
    autoTimer = on ? setInterval(() => load(), AUTO_MS) : null;
  }

  /** Loads the providers and their stats, then renders them. */
  async function load() {
    const key = keyInput.value.trim() || storedKey();
    if (!key || loading) return;
    loading = true;
    refreshBtn.disabled = true;
    refreshBtn.setAttribute("aria-busy", "true");
    fleetStatus.textContent = "Loading…";
    try {
      const r = await api("GET", "/v1/providers", { key });
      if (!r.ok) {
        if (r.status === 401) {
          storeKey("");
          fleet.hidden = true;
          forgetBtn.hidden = true;
          setAuto(false);
          showKeyError("rydes refused this key: " + r.problem.detail);
          keyInput.focus();
        } else {
          fleet.hidden = false;
          fleetStatus.textContent = "Could not list providers: " + r.problem.detail;
        }
        return;
      }
      showKeyError("");
      keyInput.value = key;
      forgetBtn.hidden = false;
      const providers = (r.data && r.data.providers) || [];
      const stats = await Promise.all(
        providers.map((p) => api("GET", "/v1/providers/" + encodeURIComponent(p.id) + "/stats", { key })),
      );
      fleet.hidden = false;
      render(providers, stats);
      fleetStatus.textContent =
        providers.length + (providers.length === 1 ? " provider" : " providers") + " · updated at " + formatTime(new Date());
    } finally {
      loading = false;
      refreshBtn.disabled = false;
      refreshBtn.removeAttribute("aria-busy");
    }
  }

  /** One cell of a stats list; swatch names the colour of its part of the mix bar. */
  function stat(label, value, cls, swatch) {
    return el("div", { class: swatch ? "swatch swatch-" + swatch : null }, el("dt", {}, label), el("dd", { class: cls || null }, value));
  }

  function render(providers, stats) {
    let active = 0;
    let queued = 0;
    let inFlight = 0;
    let asked = 0;
    const items = providers.map((p, i) => {
      const sr = stats[i];
      const s = sr && sr.ok ? sr.data : null;
      if (p.status === "active") active++;
      if (s) {
        queued += s.queue_depth || 0;
        inFlight += s.in_flight || 0;
        asked += s.asked || 0;
      }
      const head = el("div", { class: "provider-head" },
        el("h3", {}, p.name || p.id),
        el("p", { class: "provider-sub" },
          el("code", { class: "provider-id" }, p.id),
          el("span", { class: "badge kind" }, p.kind),
          el("span", { class: "badge status-" + p.status }, p.status === "active" ? "Active" : p.status === "paused" ? "Paused" : p.status)));
      const body = [head];
      if (p.paused_reason) body.push(el("p", { class: "note" }, "Paused by rydes: " + p.paused_reason));
      if (!s) {
        body.push(el("p", { class: "note" }, "Stats unavailable: " + ((sr && sr.problem && sr.problem.detail) || "no answer")));
        return el("li", { class: "card provider", "data-provider": p.id }, body);
      }
      const answered = s.quoted + s.declined + s.timed_out + s.failed + s.withdrawn;
      const mix = el("div", { class: "mix", "aria-hidden": "true" });
      for (const [k, n] of [["quoted", s.quoted], ["declined", s.declined], ["timed_out", s.timed_out], ["failed", s.failed], ["withdrawn", s.withdrawn], ["pending", s.pending]]) {
        if (!n) continue;
        const seg = el("span", { class: "mix-" + k });
        seg.style.flexGrow = String(n); // CSSOM, allowed by the CSP
        mix.append(seg);
      }
      const oldest = parseDuration(s.oldest_pending_age);
      body.push(
        el("dl", { class: "stats queue" },
          stat("Queue depth", String(s.queue_depth), s.queue_depth > 0 ? "warn" : null),
          stat("In flight", String(s.in_flight)),
          stat("Oldest waiting", s.queue_depth > 0 || oldest > 0 ? formatMillis(oldest) : "–")),
        answered + s.pending > 0 ? mix : null,
        el("dl", { class: "stats" },
          stat("Asked", String(s.asked)),
          stat("Pending", String(s.pending), null, "pending"),
          stat("Quoted", String(s.quoted), null, "quoted"),
          stat("Declined", String(s.declined), null, "declined"),
          stat("Timed out", String(s.timed_out), s.timed_out > 0 ? "warn" : null, "timed_out"),
          stat("Failed", String(s.failed), s.failed > 0 ? "bad" : null, "failed"),
          stat("Withdrawn", String(s.withdrawn), null, "withdrawn"),
          stat("Response p50", s.asked ? formatMillis(parseDuration(s.response_p50)) : "–"),
          stat("Response p99", s.asked ? formatMillis(parseDuration(s.response_p99)) : "–")),
      );
      return el("li", { class: "card provider", "data-provider": p.id, "data-status": p.status }, body);
    });
    list.replaceChildren(...items);
    totals.replaceChildren(
      el("div", { class: "tile" }, el("dt", {}, "Providers"), el("dd", {}, String(providers.length))),
      el("div", { class: "tile" }, el("dt", {}, "Active"), el("dd", {}, String(active))),
      el("div", { class: "tile" }, el("dt", {}, "Queued"), el("dd", {}, String(queued))),
      el("div", { class: "tile" }, el("dt", {}, "In flight"), el("dd", {}, String(inFlight))),
      el("div", { class: "tile" }, el("dt", {}, "Requests asked"), el("dd", {}, String(asked))),
    );
  }

  if (storedKey()) {
    keyInput.value = storedKey();
    load();
  }
})();
