// Helpers shared by the dashboard's pages: talking to the API, building DOM
// nodes from text only (never parsing HTML), and formatting prices, durations and times.
"use strict";

window.Rydes = (function () {
  /**
   * Calls the API and returns {ok, status, data, problem, date}: data is the
   * parsed JSON body of a 2xx answer, problem the RFC 9457 problem of any
   * other (or a stand-in when the body is not one). It never throws: a
   * network failure comes back as status 0.
   */
  async function api(method, path, { body, key, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers.Authorization = "Bearer " + key;
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
        signal,
      });
    } catch (err) {
      return { ok: false, status: 0, problem: { title: "Network error", detail: "rydes could not be reached (" + err.message + ")." } };
    }
    let json = null;
    try {
      json = await resp.json();
    } catch (_) {
      json = null;
    }
    const date = Date.parse(resp.headers.get("Date") || "");
    if (resp.ok) return { ok: true, status: resp.status, data: json, date: isNaN(date) ? null : date };
    const problem = json && typeof json === "object" ? json : {};
    if (!problem.title) problem.title = resp.statusText || "Error " + resp.status;
    if (!problem.detail) problem.detail = problem.title;
    return { ok: false, status: resp.status, problem };
  }

  /** Makes an element: el("td", {class: "num", "data-label": "Price"}, "12 USD", child). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** Formats a price {amount: "12.5", currency: "USD"} for people: "$12.50". */
  function formatPrice(price) {
    if (!price) return "–";
    const n = Number(price.amount);
    if (!isFinite(n)) return price.amount + " " + price.currency;
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: price.currency }).format(n);
    } catch (_) {
      return price.amount + " " + price.currency;
    }
  }

  /** Returns the price's amount as a number, for sorting (NaN sorts last). */
  function priceValue(price) {
    const n = Number(price && price.amount);
    return isFinite(n) ? n : Infinity;
  }

  /**
   * Orders quotes best first, as rydes does: lowest price, then earliest
   * received, then provider id.
   */
  function compareQuotes(a, b) {
    return (
      priceValue(a.price) - priceValue(b.price) ||
      (Date.parse(a.received_at) || 0) - (Date.parse(b.received_at) || 0) ||
      (a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0)
    );
  }

  /** Parses a Go duration ("1.5s", "2m3s", "150ms", "0s") into milliseconds; NaN if it is not one. */
  function parseDuration(s) {
    if (typeof s === "number") return s / 1e6; // nanoseconds
    if (typeof s !== "string" || s === "") return NaN;
    const units = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1e3, m: 6e4, h: 36e5 };
    const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
    let total = 0;
    let matched = "";
    let m;
    while ((m = re.exec(s)) !== null) {
      total += Number(m[1]) * units[m[2]];
      matched += m[0];
    }
    const sign = s.startsWith("-") ? -1 : 1;
    if (s === "0") return 0;
    return matched === s.replace(/^[-+]/, "") ? sign * total : NaN;
  }

  /** Formats milliseconds for people: "150 ms", "4.2 s", "3 min 5 s", "1 h 2 min". */
  function formatMillis(ms) {
    if (!isFinite(ms)) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 60) return Math.round(s) + " s";
    const min = Math.floor(s / 60);
    if (min < 60) {
      const rest = Math.round(s - min * 60);
      return rest ? min + " min " + rest + " s" : min + " min";
    }
    const h = Math.floor(min / 60);
    return min % 60 ? h + " h " + (min % 60) + " min" : h + " h";
  }

  /** Formats an ETA in seconds: "7 min", "45 s". */
  function formatETA(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return seconds + " s";
    return Math.round(seconds / 60) + " min";
  }

  /** Formats a time as a local wall-clock time: "14:03:27". */
  function formatTime(t) {
    const d = t instanceof Date ? t : new Date(t);
    if (isNaN(d)) return "";
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /** The states of a provider in a roster, as people read them. */
  const stateLabels = {
    pending: "Waiting",
    quoted: "Quoted",
    declined: "Declined",
    timed_out: "Timed out",
    withdrawn: "Withdrawn",
    failed: "Failed",
  };

  return { api, el, formatPrice, priceValue, compareQuotes, parseDuration, formatMillis, formatETA, formatTime, stateLabels };
})();
