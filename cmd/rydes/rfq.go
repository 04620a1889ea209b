package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
)

// defaultServer is where the rfq commands find rydes unless told otherwise.
const defaultServer = "http://127.0.0.1:8080"

// defaultPoll is how often create --wait and watch poll a server that has
// no event stream.
const defaultPoll = 250 * time.Millisecond

// Exit codes of "rydes rfq create --wait" (or --watch) and "rydes rfq
// watch" for an RFQ that did not complete.
// Every other failure of an rfq command, bad flags included, exits with 1.
const (
	exitExpired   = 2
	exitCancelled = 3
)

// exitError makes the program exit with code. main prints err, if not nil.
type exitError struct {
	code int
	err  error
}

// Error implements error.
func (e exitError) Error() string {
	if e.err == nil {
		return "exit status " + strconv.Itoa(e.code)
	}
	return e.err.Error()
}

// Unwrap returns the error that made the program exit.
func (e exitError) Unwrap() error { return e.err }

const rfqUsage = `Usage: rydes rfq <command> [flags]

Commands:
  create   ask every matching provider for a quote on a ride
  get      show an RFQ: its status, providers and quotes
  cancel   cancel an open RFQ
  watch    follow an RFQ until it is complete, expired or cancelled

Run 'rydes rfq <command> -h' for the flags of a command. Each flag can also
be set as RYDES_<FLAG_IN_UPPER_SNAKE>, e.g. RYDES_SERVER for --server or
RYDES_API_KEY for --api-key; a flag on the command line wins.
`

// runRFQ runs "rydes rfq", args being what follows it.
func runRFQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rfqUsage)
		return errors.New("rfq: missing command (create, get, cancel or watch)")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "create":
		return rfqCreate(ctx, rest, getenv, stdout, stderr)
	case "get":
		return rfqGet(ctx, rest, getenv, stdout, stderr)
	case "cancel":
		return rfqCancel(ctx, rest, getenv, stdout, stderr)
	case "watch":
		return rfqWatch(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stderr, rfqUsage)
		return flag.ErrHelp
	default:
		fmt.Fprint(stderr, rfqUsage)
		return fmt.Errorf("rfq: unknown command %q", cmd)
	}
}

// newFlagSet returns a flag set for one rfq command whose usage is text
// followed by the flags.
func newFlagSet(name, text string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		fmt.Fprintf(fs.Output(), "\nEach flag can also be set as RYDES_<FLAG_IN_UPPER_SNAKE>, e.g. RYDES_SERVER.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// serverFlags are the flags every rfq command has: where rydes is and how
// to authenticate to it.
type serverFlags struct {
	server string
	apiKey string
	ca     string
}

// addServerFlags defines --server, --api-key and --ca on fs.
func addServerFlags(fs *flag.FlagSet) *serverFlags {
	var f serverFlags
	fs.StringVar(&f.server, "server", defaultServer, "base `URL` of the rydes server")
	fs.StringVar(&f.apiKey, "api-key", "", "API `key` sent as a bearer token; prefer RYDES_API_KEY, as command lines are visible to other users")
	fs.StringVar(&f.ca, "ca", "", caFlagUsage)
	return &f
}

// client returns a client of the server the flags name.
func (f *serverFlags) client() (*client.Client, error) {
	hc, err := httpClient(f.ca)
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithHTTPClient(hc)}
	if f.apiKey != "" {
		opts = append(opts, client.WithAPIKey(f.apiKey))
	}
	return client.New(f.server, opts...)
}

const createUsage = `Usage: rydes rfq create --from PLACE --to PLACE --customer ID [flags]

Asks every matching provider for a quote on a ride and prints the new RFQ's
id and deadline (with --json, the RFQ as JSON).

With --wait it then follows the RFQ until it ends, printing a line for each
quote, decline and time-out as it arrives, then the outcome, such as
  complete: 6 quotes, 4 declined, 0 timed out; best 12.00 USD from UnicornManagementResource3
With --watch it follows the RFQ the same way, but on a terminal it shows a
table redrawn in place instead: the quotes, best first, every asked
provider's state and a line such as
  answered 6/10 · 12s left
With --wait --json (or --watch --json) those lines go to stderr and the
final RFQ, as JSON, to stdout. The exit status of create --wait and --watch
is
  0  complete: every asked provider answered
  2  expired: the deadline passed first
  3  cancelled
  1  any other error, bad flags included
`

// rfqCreate runs "rydes rfq create".
func rfqCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rydes rfq create", createUsage, stderr)
	srv := addServerFlags(fs)
	var req client.CreateRFQRequest
	fs.StringVar(&req.From, "from", "", "where the ride starts (required)")
	fs.StringVar(&req.To, "to", "", "where the ride ends (required)")
	fs.StringVar(&req.Customer, "customer", "", "who asks (required)")
	fs.IntVar(&req.Passengers, "passengers", 0, "number of passengers (default: not given)")
	fs.Var(timeFlag{&req.PickupAt}, "pickup", "pickup `time`, RFC 3339 such as 2026-05-01T14:30:00Z (default: as soon as possible)")
	attrs := attrFlag{}
	fs.Var(attrs, "attr", "an attribute of the ride as `key=value`, such as color=pink; repeat for more")
	fs.DurationVar(&req.Timeout, "timeout", 0, "how long providers have to answer, such as 45s (default: the server's)")
	wait := fs.Bool("wait", false, "follow the RFQ until it is complete, expired or cancelled, a line per answer")
	watch := fs.Bool("watch", false, "as --wait, but on a terminal show a table of quotes and providers redrawn in place")
	poll := fs.Duration("poll", defaultPoll, "how often --wait and --watch ask the server for news if it has no event stream")
	asJSON := fs.Bool("json", false, "print the RFQ as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("rfq create takes no arguments, got %q (see 'rydes rfq create -h')", fs.Args())
	}
	if *poll <= 0 {
		return fmt.Errorf("rfq create: --poll must be positive, got %s", *poll)
	}
	if len(attrs) > 0 {
		req.Attributes = attrs
	}
	c, err := srv.client()
	if err != nil {
		return err
	}

	rfq, err := c.CreateRFQ(ctx, req)
	if err != nil {
		return err
	}
	if !*wait && !*watch {
		if *asJSON {
			return writeJSON(stdout, rfq)
		}
		fmt.Fprintln(stdout, createdLine(rfq))
		return nil
	}

	out := stdout
	if *asJSON {
		out = stderr // stdout is for the final RFQ alone
	}
	fmt.Fprintln(out, createdLine(rfq))
	final, err := follow(ctx, c, rfq.ID, *poll, newView(out, rfq, *watch, getenv))
	return finish(ctx, rfq.ID, final, err, stdout, out, *asJSON)
}

const getUsage = `Usage: rydes rfq get ID [flags]

Shows the RFQ ID: its status, route and deadline, every asked provider's
state, and the quotes, best first (with --json, the RFQ as JSON).
`

// rfqGet runs "rydes rfq get".
func rfqGet(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rydes rfq get", getUsage, stderr)
	srv := addServerFlags(fs)
	asJSON := fs.Bool("json", false, "print the RFQ as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := oneID(fs, "get")
	if err != nil {
		return err
	}
	c, err := srv.client()
	if err != nil {
		return err
	}
	rfq, err := c.GetRFQ(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, rfq)
	}
	return printRFQ(stdout, rfq)
}

const cancelUsage = `Usage: rydes rfq cancel ID [flags]

Cancels the open RFQ ID and prints its outcome, such as
  cancelled: 2 quotes, 1 declined, 0 timed out, 7 pending; best 12.00 USD from UnicornManagementResource3
(with --json, the cancelled RFQ as JSON). An RFQ that is already complete,
expired or cancelled cannot be cancelled: the server answers 409.
`

// rfqCancel runs "rydes rfq cancel".
func rfqCancel(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rydes rfq cancel", cancelUsage, stderr)
	srv := addServerFlags(fs)
	asJSON := fs.Bool("json", false, "print the cancelled RFQ as JSON")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := oneID(fs, "cancel")
	if err != nil {
		return err
	}
	c, err := srv.client()
	if err != nil {
		return err
	}
	rfq, err := c.CancelRFQ(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, rfq)
	}
	fmt.Fprintln(stdout, summary(rfq))
	return nil
}

// oneID returns the one positional argument of fs, an RFQ id.
func oneID(fs *flag.FlagSet, cmd string) (string, error) {
	switch fs.NArg() {
	case 1:
		return fs.Arg(0), nil
	case 0:
		return "", fmt.Errorf("rfq %s: missing the RFQ id (see 'rydes rfq %s -h')", cmd, cmd)
	default:
		return "", fmt.Errorf("rfq %s takes one RFQ id, got %d arguments %q", cmd, fs.NArg(), fs.Args())
	}
}

// timeFlag is a flag.Value holding an RFC 3339 time.
type timeFlag struct{ t *time.Time }

// String returns the time in RFC 3339, or "" if it is not set.
func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

// Set parses s as an RFC 3339 time.
func (f timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return errors.New("not an RFC 3339 time such as 2026-05-01T14:30:00Z")
	}
	*f.t = t
	return nil
}

// attrFlag is a repeatable flag.Value collecting key=value pairs.
type attrFlag map[string]string

// String returns the pairs as "k1=v1,k2=v2", sorted by key.
func (a attrFlag) String() string {
	pairs := make([]string, 0, len(a))
	for _, k := range slices.Sorted(maps.Keys(a)) {
		pairs = append(pairs, k+"="+a[k])
	}
	return strings.Join(pairs, ",")
}

// Set adds the pair "key=value" s; the value may hold "=", the key may not
// be empty or given twice.
func (a attrFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	if _, dup := a[k]; dup {
		return fmt.Errorf("attribute %q given twice", k)
	}
	a[k] = v
	return nil
}

// progress prints what is new in an RFQ each time it is shown one: each
// quote, decline and time-out, once, in the order they happened.
type progress struct {
	w      io.Writer
	quoted map[string]bool // providers whose quote was printed
	closed map[string]bool // providers whose decline or time-out was printed
}

// newProgress returns a progress that prints to w.
func newProgress(w io.Writer) *progress {
	return &progress{w: w, quoted: map[string]bool{}, closed: map[string]bool{}}
}

// update prints the quotes, declines and time-outs of r not printed before,
// ordered by when they happened.
func (p *progress) update(r rydes.RFQ) {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, q := range r.Quotes {
		if !p.quoted[q.Provider] {
			p.quoted[q.Provider] = true
			lines = append(lines, line{q.ReceivedAt, quoteLine(q)})
		}
	}
	for _, e := range r.Providers {
		if (e.State != rydes.ProviderDeclined && e.State != rydes.ProviderTimedOut) || p.closed[e.Provider] {
			continue
		}
		p.closed[e.Provider] = true
		text := fmt.Sprintf("%-9s %s", "declined", printable(e.Provider))
		if e.State == rydes.ProviderTimedOut {
			text = fmt.Sprintf("%-9s %s", "timed out", printable(e.Provider))
		}
		if e.Reason != "" {
			text += "  " + printable(e.Reason)
		}
		lines = append(lines, line{e.ChangedAt, text})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	for _, l := range lines {
		fmt.Fprintln(p.w, l.text)
	}
}

// quoteLine is a quote as create --wait prints it:
// "quote     UnicornManagementResource3  12.00 USD  eta 4m0s".
func quoteLine(q rydes.Quote) string {
	s := fmt.Sprintf("%-9s %s  %s", "quote", printable(q.Provider), price(q.Price))
	if eta := eta(q); eta != "" {
		s += "  eta " + eta
	}
	return s
}

// createdLine says that rfq was created: its id, how many providers were
// asked and its deadline.
func createdLine(rfq rydes.RFQ) string {
	return fmt.Sprintf("rfq %s created: %d providers asked, deadline %s", rfq.ID, len(rfq.Providers), formatTime(rfq.Deadline))
}

// summary is the one-line outcome of an RFQ:
// "complete: 6 quotes, 4 declined, 0 timed out; best 12.00 USD from UnicornManagementResource3".
func summary(r rydes.RFQ) string {
	n := countStates(r)
	s := fmt.Sprintf("%s: %s, %d declined, %d timed out", r.Status, plural(len(r.Quotes), "quote"),
		n[rydes.ProviderDeclined], n[rydes.ProviderTimedOut])
	if pending := n[rydes.ProviderPending]; pending > 0 {
		s += fmt.Sprintf(", %d pending", pending)
	}
	if len(r.Quotes) == 0 {
		return s + "; no quotes"
	}
	best := r.Quotes[0] // the API lists quotes best first
	return s + fmt.Sprintf("; best %s from %s", price(best.Price), printable(best.Provider))
}

// printRFQ writes rfq as a readable summary: its fields, its roster and its
// quotes, best first.
func printRFQ(w io.Writer, r rydes.RFQ) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) {
		for len(cells) > 0 && cells[len(cells)-1] == "" {
			cells = cells[:len(cells)-1] // no padding at the end of a line
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("rfq", r.ID)
	row("status", string(r.Status))
	row("customer", printable(r.Customer))
	row("route", printable(r.From)+" → "+printable(r.To))
	if r.Passengers > 0 {
		row("passengers", strconv.Itoa(r.Passengers))
	}
	if !r.PickupAt.IsZero() {
		row("pickup", formatTime(r.PickupAt))
	}
	if len(r.Attributes) > 0 {
		row("attributes", printable(attrFlag(r.Attributes).String()))
	}
	row("created", formatTime(r.CreatedAt))
	row("deadline", formatTime(r.Deadline))
	if !r.ClosedAt.IsZero() {
		row("closed", formatTime(r.ClosedAt))
	}
	row()

	n := countStates(r)
	row(fmt.Sprintf("providers (%d): %d quoted, %d declined, %d timed out, %d pending", len(r.Providers),
		n[rydes.ProviderQuoted], n[rydes.ProviderDeclined], n[rydes.ProviderTimedOut], n[rydes.ProviderPending]))
	for _, e := range r.Providers {
		changed := ""
		if e.State != rydes.ProviderPending {
			changed = formatTime(e.ChangedAt)
		}
		row("  "+printable(e.Provider), strings.ReplaceAll(string(e.State), "_", " "), changed, printable(e.Reason))
	}
	row()

	if len(r.Quotes) == 0 {
		row("quotes: none")
	} else {
		row(fmt.Sprintf("quotes (%d), best first:", len(r.Quotes)))
	}
	for i, q := range r.Quotes {
		expires := ""
		if !q.ExpiresAt.IsZero() {
			expires = "expires " + formatTime(q.ExpiresAt)
		}
		eta := eta(q)
		if eta != "" {
			eta = "eta " + eta
		}
		row(fmt.Sprintf("  %d.", i+1), price(q.Price), printable(q.Provider), eta, expires)
	}
	return tw.Flush()
}

// countStates counts the providers of r's roster in each state.
func countStates(r rydes.RFQ) map[rydes.ProviderState]int {
	n := make(map[rydes.ProviderState]int)
	for _, e := range r.Providers {
		n[e.State]++
	}
	return n
}

// price returns p as "12.00 USD".
func price(p rydes.Price) string { return printable(p.Amount + " " + p.Currency) }

// eta returns a quote's ETA as a duration such as "4m0s", or "".
func eta(q rydes.Quote) string {
	if q.ETASeconds == nil {
		return ""
	}
	return (time.Duration(*q.ETASeconds) * time.Second).String()
}

// formatTime returns t in UTC as RFC 3339, to the second.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// plural returns "1 quote", "2 quotes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// printable makes text from the server safe to print on a terminal: control
// characters (escape sequences included) and invalid UTF-8 become U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, strings.ToValidUTF8(s, string(unicode.ReplacementChar)))
}

// writeJSON writes v to w as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
