package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// chromiumPath is where Debian's chromium package (scripts/setup installs
// it) puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds each wait in a browser test: a bound against hangs,
// not a timing assertion.
const browserTimeout = 30 * time.Second

// browser is a tab of a headless Chromium of its own, with a fresh profile,
// and what the page wrote to its console as errors.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// requireChromium skips the test when /usr/bin/chromium is missing (and
// fails it under CI=true).
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		rydestest.RequireDependency(t, "chromium", fmt.Errorf("%w (scripts/setup installs it)", err))
	}
}

// newBrowser starts a headless Chromium for the test and closes it when
// the test ends. Call it after starting the app: cleanups run in reverse,
// so the browser closes its event streams before the app shuts down.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	requireChromium(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	// Cleanups run last-registered first: the browser exits (and lets go of
	// its profile directory) before the temp dir and the app go away.
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx}

	// The first run starts the browser and binds its life to the context
	// it is given: ctx, not one of the bounded waits below.
	require.NoError(t, chromedp.Do(ctx), "start chromium")

	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs actions, each wait bounded by browserTimeout.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...))
}

// run runs one action and returns its value, bounded by browserTimeout.
func run[T any](b *browser, action chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	require.NoError(b.t, err)
	return v
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	return run(b, chromedp.Evaluate[T](expr))
}

// poll waits until expr is truthy in the page and returns its value.
func poll[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(browserTimeout)))
	require.NoError(b.t, err, "waiting for %s", what)
	return v
}

// screenshot saves a full-page PNG of the page as name in the artifacts
// directory and returns its path.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	poll[bool](b, "animations to settle",
		`document.getAnimations().every(a => a.effect.getComputedTiming().iterations === Infinity)`)
	png := run(b, chromedp.FullScreenshot(100))
	dir := artifactsDir(b.t)
	path := filepath.Join(dir, name)
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
	return path
}

// requireNoConsoleErrors checks that the page reported no error (no
// exception, no failed request, no Content-Security-Policy violation) but
// those holding one of the expected strings.
func (b *browser) requireNoConsoleErrors(expected ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var unexpected []string
	for _, e := range b.errors {
		if !slices.ContainsFunc(expected, func(s string) bool { return strings.Contains(e, s) }) {
			unexpected = append(unexpected, e)
		}
	}
	require.Empty(b.t, unexpected, "console errors")
}

// artifactsDir is where the browser tests leave their screenshots:
// $RYDES_ARTIFACTS, or rydes-artifacts in the system temp dir.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RYDES_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "rydes-artifacts")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// TestDashboardInBrowser drives the dashboard in a real headless Chromium
// against the real app: a customer asks for a ride, watches five simulated
// providers quote one by one without reloading, and sees the request
// complete with every quote best first; then an administrator looks at the
// providers page. It leaves screenshots, desktop and phone sized.
func TestDashboardInBrowser(t *testing.T) {
	requireChromium(t)
	cfg := config(t, t.TempDir(), fleet(5, 1, false))
	cfg.Sim.MinDelay = 50 * time.Millisecond
	cfg.Sim.MaxDelay = 300 * time.Millisecond
	cfg.AdminKey = "dashboard-test-admin-key"
	h := start(t, cfg)
	b := newBrowser(t)

	b.do(
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(h.app.URL()+"/"),
		chromedp.WaitVisible(chromedp.ID("rfq-form")),
	)
	require.Equal(t, "web", run(b, chromedp.Value(chromedp.ID("customer"))), "the customer name defaults to web")
	require.True(t, eval[bool](b, `document.getElementById("live").hidden`), "no request shown before one is made")

	// Record, on every change of the board, how many quotes it shows and
	// the request's status then; and mark the window, to tell a reload.
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		window.rydesTest = { loaded: true, seen: [] };
		const note = () => window.rydesTest.seen.push({
			rows: document.querySelectorAll("#quote-rows tr").length,
			status: document.getElementById("status").dataset.status,
		});
		new MutationObserver(note).observe(document.getElementById("quote-rows"), { childList: true });
	})()`))

	b.do(
		chromedp.SendKeys(chromedp.ID("from"), "Frankfurt"),
		chromedp.SendKeys(chromedp.ID("to"), "Las Vegas"),
		chromedp.SetValue(chromedp.ID("passengers"), "2"),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.CSS("#quote-rows tr")),
	)
	require.True(t, eval[bool](b, `window.rydesTest !== undefined && window.rydesTest.loaded`), "the first quote appeared without a reload")

	status := poll[string](b, "the final state banner", `(() => {
		const s = document.getElementById("status").dataset.status;
		return s === "open" ? false : s;
	})()`)
	require.Equal(t, string(rydes.StatusComplete), status)
	require.True(t, strings.HasPrefix(run(b, chromedp.Text(chromedp.ID("status"))), "Complete"), "the banner says complete")
	require.False(t, eval[bool](b, `!document.getElementById("cancel").hidden`), "no Cancel once final")

	// The board came alive: some quote showed while the request was still
	// open, and the rows grew one change at a time.
	type seen struct {
		Rows   int    `json:"rows"`
		Status string `json:"status"`
	}
	changes := eval[[]seen](b, `window.rydesTest.seen`)
	require.NotEmpty(t, changes)
	require.Equal(t, 1, changes[0].Rows, "the first change shows one quote: %v", changes)
	require.Equal(t, "open", changes[0].Status, "quotes show while the request is open: %v", changes)

	// What the page shows is what the API says: five quotes best first,
	// five providers quoted.
	id := eval[string](b, `new URLSearchParams(location.search).get("rfq")`)
	require.NoError(t, rydes.ValidateID(id), "the address names the request")
	rfq := h.rfq(id)
	require.Equal(t, rydes.StatusComplete, rfq.Status)
	require.Len(t, rfq.Quotes, 5)
	var wantOrder []string
	for _, q := range rfq.Quotes {
		wantOrder = append(wantOrder, q.Provider)
	}
	require.Equal(t, wantOrder, eval[[]string](b, `[...document.querySelectorAll("#quote-rows tr")].map(r => r.dataset.provider)`),
		"the board is best first, as the API")
	prices := eval[[]string](b, `[...document.querySelectorAll("#quote-rows tr .price")].map(c => c.textContent)`)
	require.Len(t, prices, 5)
	for i, p := range prices {
		require.Contains(t, p, rfq.Quotes[i].Price.Amount, "row %d shows the price", i+1)
	}
	require.Equal(t, []string{"quoted", "quoted", "quoted", "quoted", "quoted"},
		eval[[]string](b, `[...document.querySelectorAll("#roster li")].map(li => li.dataset.state)`))
	require.Equal(t, "5/5", run(b, chromedp.Text(chromedp.ID("roster-count"))))
	b.screenshot("dashboard.png")

	// On a phone: nothing wider than the screen.
	b.do(chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	poll[bool](b, "the phone layout", `window.innerWidth === 375`)
	require.LessOrEqual(t, eval[int](b, `document.documentElement.scrollWidth`), 375, "no sideways scrolling at 375px")
	b.screenshot("dashboard-phone.png")

	// Reloading the address shows the same request, final.
	b.do(
		chromedp.EmulateViewport(1280, 900),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status="complete"]`)),
	)
	require.Equal(t, 5, eval[int](b, `document.querySelectorAll("#quote-rows tr").length`))

	// The providers page: the admin key first, then the fleet.
	b.do(
		chromedp.Navigate(h.app.URL()+"/providers"),
		chromedp.WaitVisible(chromedp.ID("key-form")),
		chromedp.SendKeys(chromedp.ID("admin-key"), "not-the-key"),
		chromedp.Click(chromedp.ID("use-key")),
		chromedp.WaitVisible(chromedp.ID("key-err")),
	)
	require.True(t, eval[bool](b, `document.getElementById("fleet").hidden`), "a wrong key shows nothing")
	b.do(
		chromedp.SetValue(chromedp.ID("admin-key"), cfg.AdminKey),
		chromedp.Click(chromedp.ID("use-key")),
		chromedp.WaitVisible(chromedp.CSS("#providers li")),
	)
	require.Equal(t, 5, eval[int](b, `document.querySelectorAll("#providers li").length`))
	require.Equal(t, cfg.AdminKey, eval[string](b, `sessionStorage.getItem("rydes.adminKey")`), "the key is kept in the tab")
	first := run(b, chromedp.Text(chromedp.CSS("#providers li")))
	require.Contains(t, first, "UnicornManagementResource1")
	require.Contains(t, first, "Queue depth")
	b.do(chromedp.Click(chromedp.ID("refresh")))
	poll[bool](b, "the refresh", `!document.getElementById("refresh").disabled && document.querySelectorAll("#providers li").length === 5`)
	b.screenshot("providers.png")
	b.do(chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	poll[bool](b, "the phone layout", `window.innerWidth === 375`)
	require.LessOrEqual(t, eval[int](b, `document.documentElement.scrollWidth`), 375, "no sideways scrolling at 375px")
	b.screenshot("providers-phone.png")

	// The wrong key's 401 is the only error the browser saw.
	b.requireNoConsoleErrors("status of 401 (Unauthorized) (" + h.app.URL() + "/v1/providers:")
}

// TestDashboardCancelInBrowser cancels a request from the dashboard while
// its providers stay silent: the countdown runs, the roster waits, and
// Cancel ends it with the cancelled banner, the silent providers withdrawn.
func TestDashboardCancelInBrowser(t *testing.T) {
	requireChromium(t)
	h := start(t, config(t, t.TempDir(), fleet(3, 0, true)))
	b := newBrowser(t)

	b.do(
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(h.app.URL()+"/"),
		chromedp.WaitVisible(chromedp.ID("rfq-form")),
		chromedp.SendKeys(chromedp.ID("from"), "Frankfurt"),
		chromedp.SendKeys(chromedp.ID("to"), "Las Vegas"),
		chromedp.SetValue(chromedp.ID("timeout"), "1m"),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("cancel")),
	)
	require.Equal(t, "open", eval[string](b, `document.getElementById("status").dataset.status`))
	require.Equal(t, []string{"pending", "pending", "pending"},
		eval[[]string](b, `[...document.querySelectorAll("#roster li")].map(li => li.dataset.state)`))
	left := poll[string](b, "the countdown", `(() => {
		const s = document.getElementById("countdown").textContent;
		return /^\d+:\d\d$|^\d+ s$/.test(s) ? s : false;
	})()`)
	t.Logf("countdown shows %q", left)
	b.screenshot("dashboard-open.png")

	b.do(
		chromedp.Click(chromedp.ID("cancel")),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status="cancelled"]`)),
		chromedp.WaitNotVisible(chromedp.ID("cancel")),
	)
	require.True(t, strings.HasPrefix(run(b, chromedp.Text(chromedp.ID("status"))), "Cancelled"))
	require.Equal(t, []string{"withdrawn", "withdrawn", "withdrawn"}, poll[[]string](b, "the roster withdrawn by the cancel", `(() => {
		const s = [...document.querySelectorAll("#roster li")].map(li => li.dataset.state);
		return s.length === 3 && s.every(x => x === "withdrawn") ? s : false;
	})()`))
	id := eval[string](b, `new URLSearchParams(location.search).get("rfq")`)
	require.Equal(t, rydes.StatusCancelled, h.rfq(id).Status)
	b.screenshot("dashboard-cancelled.png")
	b.requireNoConsoleErrors()
}
