package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
)

const watchUsage = `Usage: rydes rfq watch ID [flags]

Follows the RFQ ID until it is complete, expired or cancelled, as
'rydes rfq create --watch' does. On a terminal it shows a table redrawn in
place: the quotes, best first, every asked provider's state and a line such
as
  answered 6/10 · 12s left
Otherwise it prints a line for each event, earlier ones included, such as
  quote     UnicornManagementResource3  12.00 USD  eta 5m0s
then the outcome. With --json those lines go to stderr and the final RFQ, as
JSON, to stdout. The exit status is
  0  complete: every asked provider answered
  2  expired: the deadline passed first
  3  cancelled
  1  any other error, bad flags included
`

// rfqWatch runs "rydes rfq watch".
func rfqWatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rydes rfq watch", watchUsage, stderr)
	srv := addServerFlags(fs)
	poll := fs.Duration("poll", defaultPoll, "how often to ask the server for news if it has no event stream")
	asJSON := fs.Bool("json", false, "print the final RFQ as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := oneID(fs, "watch")
	if err != nil {
		return err
	}
	if *poll <= 0 {
		return fmt.Errorf("rfq watch: --poll must be positive, got %s", *poll)
	}
	c, err := srv.client()
	if err != nil {
		return err
	}
	rfq, err := c.GetRFQ(ctx, id)
	if err != nil {
		return err
	}
	out := stdout
	if *asJSON {
		out = stderr // stdout is for the final RFQ alone
	}
	fmt.Fprintln(out, createdLine(rfq))
	v := newView(out, rfq, true, getenv)
	final, err := follow(ctx, c, rfq.ID, *poll, v)
	return finish(ctx, rfq.ID, final, err, stdout, out, *asJSON)
}

// follow follows the RFQ id until it is final, showing its progress on v,
// and returns it then. It reads the RFQ's event stream from the start and,
// if the server has none (see noStream), polls every poll instead.
func follow(ctx context.Context, c *client.Client, id string, poll time.Duration, v view) (rydes.RFQ, error) {
	// The stream (or the polling) runs in its own goroutine, so that a live
	// view can be redrawn every second while nothing happens. Updates go
	// over an unbuffered channel: all were taken when done is sent.
	type update struct {
		event *rydes.Event // from the stream
		rfq   *rydes.RFQ   // from a poll
	}
	type result struct {
		rfq rydes.RFQ
		err error
	}
	updates := make(chan update)
	done := make(chan result, 1)
	send := func(u update) error {
		select {
		case updates <- u:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() {
		var last *rydes.Event
		err := c.Events(ctx, id, 0, func(e rydes.Event) error {
			last = &e
			return send(update{event: &e})
		})
		if p, ok := errors.AsType[*client.Problem](err); ok && last == nil && noStream(p.Status) {
			// No event stream on this server: poll. (For an RFQ that is not
			// there, the poll fails with 404 too.)
			final, err := c.Watch(ctx, id, poll, func(r rydes.RFQ) error { return send(update{rfq: &r}) })
			done <- result{final, err}
			return
		}
		if err != nil {
			done <- result{err: err}
			return
		}
		// The final event says how the RFQ ended; the RFQ itself is read
		// for the outcome and --json.
		final, err := c.GetRFQ(ctx, id)
		if err == nil && !final.Status.Final() {
			final.Status = last.Status
		}
		done <- result{final, err}
	}()

	var tick <-chan time.Time
	if v.live() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
		v.tick() // the table at once, before any event
	}
	for {
		select {
		case u := <-updates:
			if u.event != nil {
				v.event(*u.event)
			} else {
				v.poll(*u.rfq)
			}
		case <-tick:
			v.tick()
		case r := <-done:
			if r.err == nil {
				v.end(r.rfq)
			}
			return r.rfq, r.err
		}
	}
}

// noStream reports whether a response of the given status to the event
// stream means that the server has none: 404 from a server older than the
// stream, 501 or 503 from one that runs without it.
func noStream(status int) bool {
	return status == http.StatusNotFound || status == http.StatusNotImplemented || status == http.StatusServiceUnavailable
}

// finish prints the outcome of the followed RFQ id to out (and, with
// asJSON, the final RFQ to stdout), given what follow returned, and returns
// the error whose exit code tells how the RFQ ended.
func finish(ctx context.Context, id string, final rydes.RFQ, err error, stdout, out io.Writer, asJSON bool) error {
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for rfq %s, which goes on ('rydes rfq get %s' shows it): %w", id, id, err)
		}
		return fmt.Errorf("wait for rfq %s: %w", id, err)
	}
	fmt.Fprintln(out, summary(final))
	if asJSON {
		if err := writeJSON(stdout, final); err != nil {
			return err
		}
	}
	switch final.Status {
	case rydes.StatusExpired:
		return exitError{code: exitExpired, err: fmt.Errorf("rfq %s expired before every provider answered", final.ID)}
	case rydes.StatusCancelled:
		return exitError{code: exitCancelled, err: fmt.Errorf("rfq %s was cancelled", final.ID)}
	}
	return nil
}

// view shows the progress of a followed RFQ. follow calls its methods from
// one goroutine.
type view interface {
	// event shows an event of the stream; the stream starts with the RFQ's
	// first event, so events already in the RFQ come again.
	event(e rydes.Event)
	// poll shows the RFQ as a poll read it, when the server has no stream.
	poll(r rydes.RFQ)
	// tick is called every second if live is true.
	tick()
	// live reports whether the view wants ticks.
	live() bool
	// end shows the final RFQ.
	end(r rydes.RFQ)
}

// newView returns the view for following rfq on w: a live table if
// liveOnTerminal is set and w is a terminal, plain lines otherwise.
func newView(w io.Writer, rfq rydes.RFQ, liveOnTerminal bool, getenv func(string) string) view {
	if liveOnTerminal && getenv("TERM") != "dumb" && isTerminal(w) {
		return &liveView{w: w, rfq: rfq, now: time.Now}
	}
	return &plainView{w: w, p: newProgress(w)}
}

// isTerminal reports whether w is a terminal. A writer may say so itself
// with an IsTerminal method, which tests use to force either answer;
// otherwise a writer with a file descriptor (an *os.File) is asked about.
func isTerminal(w io.Writer) bool {
	switch w := w.(type) {
	case interface{ IsTerminal() bool }:
		return w.IsTerminal()
	case interface{ Fd() uintptr }:
		return term.IsTerminal(int(w.Fd()))
	}
	return false
}

// plainView prints a line for each quote, decline and other answer as it
// comes, for logs, pipes and scripts.
type plainView struct {
	w io.Writer
	p *progress // for polls
}

// event prints the line of e, if it has one: final events and created have
// none (the outcome and the created line say it).
func (v *plainView) event(e rydes.Event) {
	if line := eventLine(e); line != "" {
		fmt.Fprintln(v.w, line)
	}
}

func (v *plainView) poll(r rydes.RFQ) { v.p.update(r) }
func (v *plainView) tick()            {}
func (v *plainView) live() bool       { return false }
func (v *plainView) end(rydes.RFQ)    {}

// eventLine is e as a line, such as
// "quote     UnicornManagementResource3  12.00 USD  eta 5m0s" or
// "declined  UnicornManagementResource1  no unicorns free"; "" for created
// and the final events.
func eventLine(e rydes.Event) string {
	var verb string
	switch e.Type {
	case rydes.EventQuote:
		if e.Quote != nil {
			return quoteLine(*e.Quote)
		}
		verb = "quote"
	case rydes.EventDecline:
		verb = "declined"
	case rydes.EventProviderTimedOut:
		verb = "timed out"
	case rydes.EventProviderWithdrawn:
		verb = "withdrawn"
	case rydes.EventProviderFailed:
		verb = "failed"
	default:
		return ""
	}
	s := fmt.Sprintf("%-9s %s", verb, printable(e.Provider))
	if e.Reason != "" {
		s += "  " + printable(e.Reason)
	}
	return s
}

// liveView keeps a table of the RFQ on a terminal and redraws it in place
// on each event and every second: the quotes best first, the roster and a
// progress line such as "answered 6/10 · 12s left".
type liveView struct {
	w     io.Writer
	rfq   rydes.RFQ        // as of the last event shown
	now   func() time.Time // the clock of "12s left"
	lines int              // lines of the table drawn last, to go back over
}

func (v *liveView) event(e rydes.Event) {
	apply(&v.rfq, e)
	v.draw()
}

func (v *liveView) poll(r rydes.RFQ) {
	v.rfq = r
	v.draw()
}

func (v *liveView) tick()      { v.draw() }
func (v *liveView) live() bool { return true }

func (v *liveView) end(r rydes.RFQ) {
	v.rfq = r
	v.draw()
}

// draw writes the table over the one drawn before: the cursor goes back up
// to its first line, the screen below is cleared and the table written
// again, all in one write.
func (v *liveView) draw() {
	var b bytes.Buffer
	if v.lines > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", v.lines)
	}
	table := v.table()
	b.WriteString(table)
	v.lines = strings.Count(table, "\n")
	_, _ = v.w.Write(b.Bytes())
}

// table returns the table of the RFQ, each line ended by "\n".
func (v *liveView) table() string {
	r := v.rfq
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(cells ...string) {
		for len(cells) > 0 && cells[len(cells)-1] == "" {
			cells = cells[:len(cells)-1]
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if len(r.Quotes) == 0 {
		row("quotes: none yet")
	} else {
		row(fmt.Sprintf("quotes (%d), best first:", len(r.Quotes)))
	}
	for _, q := range r.Quotes {
		eta := eta(q)
		if eta != "" {
			eta = "eta " + eta
		}
		row("  "+printable(q.Provider), price(q.Price), eta)
	}
	row(fmt.Sprintf("providers (%d):", len(r.Providers)))
	for _, e := range r.Providers {
		row("  "+printable(e.Provider), strings.ReplaceAll(string(e.State), "_", " "), printable(e.Reason))
	}
	_ = tw.Flush()
	b.WriteString(v.progressLine() + "\n")
	return b.String()
}

// progressLine is "answered 6/10 · 12s left" for an open RFQ, and
// "answered 6/10 · expired" for a final one.
func (v *liveView) progressLine() string {
	r := v.rfq
	answered := 0
	for _, e := range r.Providers {
		if e.State.Answered() {
			answered++
		}
	}
	s := fmt.Sprintf("answered %d/%d · ", answered, len(r.Providers))
	if r.Status.Final() {
		return s + string(r.Status)
	}
	left := max(r.Deadline.Sub(v.now()), 0)
	left = (left + time.Second - 1).Truncate(time.Second) // 0.2s left shows as 1s
	return s + left.String() + " left"
}

// apply brings r up to date with e, unless r already holds it (e.Seq is
// not past r.Seq): the status, the roster entry of e's provider and, for a
// quote, the quotes, best first.
func apply(r *rydes.RFQ, e rydes.Event) {
	if e.Seq <= r.Seq {
		return
	}
	r.Seq = e.Seq
	if e.Status != "" {
		r.Status = e.Status
	}
	if e.Type.Final() {
		r.ClosedAt = e.At
	}
	state, ok := map[rydes.EventType]rydes.ProviderState{
		rydes.EventQuote:             rydes.ProviderQuoted,
		rydes.EventDecline:           rydes.ProviderDeclined,
		rydes.EventProviderTimedOut:  rydes.ProviderTimedOut,
		rydes.EventProviderWithdrawn: rydes.ProviderWithdrawn,
		rydes.EventProviderFailed:    rydes.ProviderFailed,
	}[e.Type]
	if !ok {
		return
	}
	for i := range r.Providers {
		if p := &r.Providers[i]; p.Provider == e.Provider {
			p.State, p.ChangedAt, p.Reason = state, e.At, e.Reason
		}
	}
	if e.Type == rydes.EventQuote && e.Quote != nil {
		quotes := make([]rydes.Quote, 0, len(r.Quotes)+1)
		for _, q := range r.Quotes {
			if q.Provider != e.Quote.Provider {
				quotes = append(quotes, q)
			}
		}
		r.Quotes = append(quotes, *e.Quote)
		rydes.SortQuotes(r.Quotes)
	}
}
