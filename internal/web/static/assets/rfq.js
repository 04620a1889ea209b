// The ride request page: submits a request for quotes, then follows it live
// over server-sent events until its final event, falling back to GET when
// the stream breaks. Everything the server sends is rendered as text.
"use strict";

(function () {
  const { api, el, formatPrice, compareQuotes, formatETA, formatTime, formatMillis, stateLabels } = window.Rydes;

  const EVENT_TYPES = [
    "created", "quote", "decline", "provider_timed_out", "provider_withdrawn", "provider_failed",
    "complete", "expired", "cancelled",
  ];
  const ROSTER_STATE = {
    quote: "quoted",
    decline: "declined",
    provider_timed_out: "timed_out",
    provider_withdrawn: "withdrawn",
    provider_failed: "failed",
  };
  const FINAL = new Set(["complete", "expired", "cancelled"]);
  const FIELDS = ["from", "to", "passengers", "timeout", "customer"];

  const $ = (id) => document.getElementById(id);
  const form = $("rfq-form");
  const submit = $("submit");
  const formError = $("form-error");
  const live = $("live");
  const cancelBtn = $("cancel");
  const statusBox = $("status");
  const statusTitle = $("status-title");
  const statusText = $("status-text");
  const countdown = $("countdown");
  const countdownLabel = $("countdown-label");
  const countdownBar = $("countdown-bar");
  const conn = $("conn");
  const board = $("quotes");
  const boardEmpty = $("board-empty");
  const quoteRows = $("quote-rows");
  const quoteCount = $("quote-count");
  const roster = $("roster");
  const rosterCount = $("roster-count");

  /**
   * The request being watched: its latest known state (rfq, whose seq says
   * which events it includes), its event stream and timers. A new request
   * replaces it; handlers of an old one check `watch === w` and do nothing.
   */
  let watch = null;

  // ---- the form ----------------------------------------------------------

  function fieldError(name, message) {
    const input = $(name);
    const out = $(name + "-err");
    if (!input || !out) return false;
    if (message) {
      input.setAttribute("aria-invalid", "true");
      out.textContent = message;
      out.hidden = false;
    } else {
      input.removeAttribute("aria-invalid");
      out.textContent = "";
      out.hidden = true;
    }
    return true;
  }

  function clearErrors() {
    FIELDS.forEach((f) => fieldError(f, ""));
    formError.hidden = true;
    formError.textContent = "";
  }

  function showFormError(message) {
    formError.textContent = message;
    formError.hidden = false;
  }

  function validate() {
    const errors = {};
    for (const f of ["from", "to", "customer"]) {
      if ($(f).value.trim() === "") errors[f] = "Required.";
    }
    const p = Number($("passengers").value);
    if (!Number.isInteger(p) || p < 1 || p > 64) errors.passengers = "A whole number from 1 to 64.";
    return errors;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors();
    const errors = validate();
    const bad = Object.keys(errors);
    if (bad.length) {
      bad.forEach((f) => fieldError(f, errors[f]));
      $(bad[0]).focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    submit.textContent = "Sending…";
    const body = {
      customer: $("customer").value.trim(),
      from: $("from").value.trim(),
      to: $("to").value.trim(),
      passengers: Number($("passengers").value),
      timeout: $("timeout").value,
    };
    const r = await api("POST", "/v1/rfqs", { body });
    submit.disabled = false;
    submit.removeAttribute("aria-busy");
    submit.textContent = "Get quotes";
    if (!r.ok) {
      let first = null;
      for (const fe of r.problem.errors || []) {
        const name = String(fe.field || "").split(".")[0];
        if (fieldError(name, fe.reason || r.problem.detail) && !first) first = name;
      }
      let msg = r.problem.detail;
      if (r.status === 401) msg += " The dashboard asks without a key, which rydes allows to a browser on this machine in --demo mode.";
      if (r.status === 422) msg = "No provider can serve this ride right now. " + msg;
      showFormError(msg);
      if (first) $(first).focus();
      return;
    }
    follow(r.data, Date.parse(r.data.created_at) - Date.now());
    $("live-h").focus();
    live.scrollIntoView({ block: "start", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  });

  // ---- following one request --------------------------------------------

  /**
   * Starts following rfq; offset is the server's clock minus ours, in
   * milliseconds, for the countdown.
   */
  function follow(rfq, offset) {
    stop();
    const w = {
      rfq: normalize(rfq),
      offset: isFinite(offset) ? offset : 0,
      total: Date.parse(rfq.deadline) - Date.parse(rfq.created_at),
      es: null,
      ticker: null,
      reopenTimer: null,
      backoff: 0,
      refreshing: null,
      lastRefresh: 0,
      rows: new Map(), // provider -> <tr>
      items: new Map(), // provider -> <li>
    };
    watch = w;
    history.replaceState(null, "", "?rfq=" + encodeURIComponent(rfq.id));
    buildRoster(w);
    quoteRows.replaceChildren();
    live.hidden = false;
    $("route").textContent = rfq.from + " → " + rfq.to + (rfq.passengers ? " · " + rfq.passengers + (rfq.passengers === 1 ? " passenger" : " passengers") : "");
    $("rfq-id").textContent = "Request " + rfq.id;
    render(w);
    if (!isFinal(w)) {
      w.ticker = setInterval(() => tick(w), 200);
      tick(w);
      open(w);
    }
  }

  function normalize(rfq) {
    rfq.quotes = (rfq.quotes || []).slice().sort(compareQuotes);
    rfq.providers = rfq.providers || [];
    return rfq;
  }

  function isFinal(w) {
    return FINAL.has(w.rfq.status);
  }

  /** Stops following the current request, if any. */
  function stop() {
    const w = watch;
    if (!w) return;
    watch = null;
    closeStream(w);
    clearInterval(w.ticker);
  }

  function closeStream(w) {
    if (w.es) {
      w.es.close();
      w.es = null;
    }
    clearTimeout(w.reopenTimer);
    w.reopenTimer = null;
  }

  /**
   * Opens the event stream after the events the state already holds. The
   * browser reconnects by itself, sending Last-Event-ID.
   */
  function open(w) {
    let url = "/v1/rfqs/" + encodeURIComponent(w.rfq.id) + "/events";
    if (Number.isInteger(w.rfq.seq) && w.rfq.seq > 0) url += "?after=" + w.rfq.seq;
    const es = new EventSource(url);
    w.es = es;
    const onEvent = (msg) => {
      if (watch !== w || w.es !== es) return;
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      apply(w, ev);
    };
    EVENT_TYPES.forEach((t) => es.addEventListener(t, onEvent));
    es.onmessage = onEvent;
    es.onopen = () => {
      if (watch !== w || w.es !== es) return;
      w.backoff = 0;
      setConn("");
    };
    es.onerror = () => {
      if (watch !== w || w.es !== es || isFinal(w)) return;
      // Whatever the stream missed, GET has it.
      refresh(w);
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an answer that is not a stream): try again
        // ourselves, later and later.
        w.es = null;
        w.backoff = Math.min(Math.max(1000, w.backoff * 2), 15000);
        setConn("Live updates interrupted; retrying in " + Math.round(w.backoff / 1000) + " s.");
        w.reopenTimer = setTimeout(() => {
          if (watch === w && !isFinal(w)) open(w);
        }, w.backoff);
      } else {
        setConn("Live updates interrupted; reconnecting…");
      }
    };
  }

  /** Reads the request with GET, at most once a second, and applies what is new. */
  function refresh(w, force) {
    if (w.refreshing) return w.refreshing;
    if (!force && Date.now() - w.lastRefresh < 1000) return Promise.resolve();
    w.lastRefresh = Date.now();
    w.refreshing = api("GET", "/v1/rfqs/" + encodeURIComponent(w.rfq.id)).then((r) => {
      w.refreshing = null;
      if (watch !== w) return;
      if (r.ok) replace(w, r.data);
      else if (r.status === 404) setConn("This request is gone.");
    });
    return w.refreshing;
  }

  /** Replaces the state with a whole RFQ read from the API, unless it is older. */
  function replace(w, rfq) {
    if (typeof rfq.seq === "number" && typeof w.rfq.seq === "number" && rfq.seq < w.rfq.seq) return;
    w.rfq = normalize(rfq);
    render(w);
    if (isFinal(w)) finish(w);
  }

  /** Applies one event: each seq once, in order; a gap is filled with GET. */
  function apply(w, ev) {
    const rfq = w.rfq;
    if (typeof ev.seq !== "number" || ev.seq <= rfq.seq) return;
    const gap = ev.seq > rfq.seq + 1;
    const state = ROSTER_STATE[ev.type];
    if (ev.type === "quote" && ev.quote) {
      rfq.quotes = rfq.quotes.filter((q) => q.provider !== ev.quote.provider);
      rfq.quotes.push(ev.quote);
      rfq.quotes.sort(compareQuotes);
    }
    if (state && ev.provider) {
      const entry = rfq.providers.find((p) => p.provider === ev.provider);
      if (entry) {
        entry.state = state;
        entry.changed_at = ev.at;
        if (ev.reason) entry.reason = ev.reason;
      }
    }
    if (ev.status) rfq.status = ev.status;
    if (FINAL.has(ev.type)) rfq.closed_at = ev.at;
    rfq.seq = ev.seq;
    render(w);
    if (isFinal(w)) finish(w);
    else if (gap) refresh(w, true);
  }

  /** The request is final: no more stream or countdown; one last GET for the exact end state. */
  function finish(w) {
    if (w.finished) return;
    w.finished = true;
    closeStream(w);
    clearInterval(w.ticker);
    setConn("");
    refresh(w, true);
  }

  // ---- rendering -------------------------------------------------------

  function render(w) {
    renderBoard(w);
    renderRoster(w);
    renderStatus(w);
    tick(w);
  }

  function renderBoard(w) {
    const quotes = w.rfq.quotes;
    quoteCount.textContent = String(quotes.length);
    board.hidden = quotes.length === 0;
    boardEmpty.hidden = quotes.length !== 0;
    boardEmpty.textContent = isFinal(w) ? "No quotes." : "Waiting for the first quote…";
    quotes.forEach((q, i) => {
      let row = w.rows.get(q.provider);
      if (!row) {
        row = el("tr", { class: "fresh", "data-provider": q.provider },
          el("td", { class: "rank", "data-label": "Rank" }),
          el("th", { scope: "row", class: "provider", "data-label": "Provider" }),
          el("td", { class: "num price", "data-label": "Price" }),
          el("td", { class: "num eta", "data-label": "ETA" }));
        row.addEventListener("animationend", () => row.classList.remove("fresh"), { once: true });
        w.rows.set(q.provider, row);
      }
      const [rank, provider, price, eta] = row.children;
      rank.textContent = String(i + 1);
      provider.replaceChildren(q.provider);
      if (i === 0) provider.append(el("span", { class: "badge best" }, "Best"));
      price.textContent = formatPrice(q.price);
      eta.textContent = formatETA(q.eta_seconds);
      row.classList.toggle("is-best", i === 0);
      if (quoteRows.children[i] !== row) quoteRows.insertBefore(row, quoteRows.children[i] || null);
    });
  }

  function buildRoster(w) {
    roster.replaceChildren();
    for (const p of w.rfq.providers) {
      const item = el("li", { class: "roster-item", "data-provider": p.provider },
        el("span", { class: "roster-name" }, p.provider),
        el("span", { class: "chip" }),
        el("span", { class: "roster-note" }));
      w.items.set(p.provider, item);
      roster.append(item);
    }
  }

  function renderRoster(w) {
    const created = Date.parse(w.rfq.created_at);
    let done = 0;
    for (const p of w.rfq.providers) {
      const item = w.items.get(p.provider);
      if (!item) continue;
      const [, chip, note] = item.children;
      item.dataset.state = p.state;
      // A request closed by its customer leaves the silent ones pending.
      chip.textContent = p.state === "pending" && isFinal(w) ? "No answer" : stateLabels[p.state] || p.state;
      const parts = [];
      if (p.state !== "pending") {
        done++;
        const after = Date.parse(p.changed_at) - created;
        if (isFinite(after) && after >= 0) parts.push("after " + formatMillis(after));
      }
      if (p.reason) parts.push(p.reason);
      note.textContent = parts.join(" · ");
    }
    rosterCount.textContent = done + "/" + w.rfq.providers.length;
    roster.classList.toggle("closed", isFinal(w));
  }

  function renderStatus(w) {
    const rfq = w.rfq;
    const n = rfq.quotes.length;
    const asked = rfq.providers.length;
    const quotes = n === 0 ? "no quotes" : n === 1 ? "1 quote" : n + " quotes";
    const best = n ? " Best: " + formatPrice(rfq.quotes[0].price) + " from " + rfq.quotes[0].provider + "." : "";
    let title;
    let detail;
    switch (rfq.status) {
      case "complete":
        title = "Complete";
        detail = "All " + asked + (asked === 1 ? " provider" : " providers") + " answered: " + quotes + "." + best;
        break;
      case "expired":
        title = "Expired";
        detail = "The deadline passed before every provider answered; " + (n ? quotes + " kept." : "no quotes.") + best;
        break;
      case "cancelled":
        title = "Cancelled";
        detail = "This request was withdrawn with " + quotes + "." + best;
        break;
      default:
        title = "Open";
        detail = "Asked " + asked + (asked === 1 ? " provider" : " providers") + "; gathering quotes until every one answers or the deadline passes.";
    }
    statusBox.dataset.status = rfq.status;
    if (statusTitle.textContent !== title) statusTitle.textContent = title;
    if (statusText.textContent !== detail) statusText.textContent = detail;
    const open = rfq.status === "open";
    cancelBtn.hidden = !open;
    if (open) {
      cancelBtn.disabled = false;
      cancelBtn.textContent = "Cancel request";
    }
  }

  /** Updates the countdown to the deadline. */
  function tick(w) {
    if (isFinal(w)) {
      const closed = Date.parse(w.rfq.closed_at);
      const took = closed - Date.parse(w.rfq.created_at);
      countdownLabel.textContent = "Closed";
      countdown.textContent = isFinite(took) ? "after " + formatMillis(took) + " at " + formatTime(closed) : "";
      countdownBar.value = 0;
      countdownBar.hidden = true;
      return;
    }
    const left = Date.parse(w.rfq.deadline) - (Date.now() + w.offset);
    countdownBar.hidden = false;
    countdownLabel.textContent = "Closes in";
    if (left <= 0) {
      countdown.textContent = "closing…";
      countdownBar.value = 0;
      refresh(w); // the server expires it; see that it did
      return;
    }
    const s = Math.ceil(left / 1000);
    countdown.textContent = s >= 60 ? Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") : s + " s";
    countdownBar.value = w.total > 0 ? Math.round((left / w.total) * 1000) : 0;
  }

  function setConn(message) {
    conn.textContent = message;
    conn.hidden = message === "";
  }

  // ---- cancel ---------------------------------------------------------------

  cancelBtn.addEventListener("click", async () => {
    const w = watch;
    if (!w || isFinal(w)) return;
    cancelBtn.disabled = true;
    cancelBtn.textContent = "Cancelling…";
    const r = await api("DELETE", "/v1/rfqs/" + encodeURIComponent(w.rfq.id));
    if (watch !== w) return;
    if (r.ok) replace(w, r.data);
    else {
      // 409: it closed first. Anything else: say so, and show what is true now.
      if (r.status !== 409) setConn("Could not cancel: " + r.problem.detail);
      await refresh(w, true);
      cancelBtn.disabled = false;
      cancelBtn.textContent = "Cancel request";
    }
    statusBox.focus();
  });

  // ---- resume a request named in the address ------------------------------

  const id = new URLSearchParams(location.search).get("rfq");
  if (id) {
    api("GET", "/v1/rfqs/" + encodeURIComponent(id)).then((r) => {
      if (r.ok) follow(r.data, r.date ? r.date - Date.now() : 0);
      else showFormError("Request " + id + ": " + r.problem.detail);
    });
  }
})();
