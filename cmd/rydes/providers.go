package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
)

// The admin commands, "rydes providers" and "rydes dead-letters", manage a
// running rydes over its admin API. They need rydes's admin key.

// adminEnvFlags are the only flags of the admin commands that are read from
// the environment: where rydes is, the admin key and the CA to trust. A provider's settings
// come from the command line alone, so that variables meant for other
// commands (RYDES_FROM, RYDES_ATTR for rfq create) never slip into one.
var adminEnvFlags = []string{"server", "admin-key", "ca"}

const providersUsage = `Usage: rydes providers <command> [flags]

Commands:
  add      register a provider and print its credentials, shown once
  list     list the providers
  get      show a provider
  pause    stop asking a provider for new requests
  resume   ask a paused provider for new requests again
  rm       remove a provider; it is withdrawn from the requests it was asked in
  rotate   replace a provider's credentials and print the new ones
  stats    show how a provider has been doing

Every command takes --server (default ` + defaultServer + `), --admin-key and
--ca (a private CA to trust for an https server), and all but rm take --json.
Run 'rydes providers <command> -h' for the others. The admin key is best set
as RYDES_ADMIN_KEY, the server as RYDES_SERVER and the CA as RYDES_CA; no
other flag of these commands is read from the environment.
`

const deadLettersUsage = `Usage: rydes dead-letters <command> [flags]

Dead letters are deliveries to webhook providers that exhausted their
retries.

Commands:
  list     list dead letters, newest first
  replay   deliver a dead letter's request again

Every command takes --server (default ` + defaultServer + `), --admin-key,
--ca (a private CA to trust for an https server) and --json. The admin key is
best set as RYDES_ADMIN_KEY, the server as RYDES_SERVER and the CA as
RYDES_CA; no other flag of these commands is read from the environment.
`

// runAdmin runs "rydes providers", "rydes dead-letters" or "rydes audit" (cmd), args being
// what follows it.
func runAdmin(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := adminEnv(getenv)
	var (
		usage    = providersUsage
		commands = map[string]adminCommand{
			"add": providersAdd, "list": providersList, "get": providersGet, "pause": providersPause,
			"resume": providersResume, "rm": providersRm, "rotate": providersRotate, "stats": providersStats,
		}
		names = "add, list, get, pause, resume, rm, rotate or stats"
	)
	if cmd == "dead-letters" {
		usage = deadLettersUsage
		commands = map[string]adminCommand{"list": deadLettersList, "replay": deadLettersReplay}
		names = "list or replay"
	}
	if cmd == "audit" {
		usage = auditUsage
		commands = map[string]adminCommand{"list": auditList}
		names = "list"
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%s: missing command (%s)", cmd, names)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	runCmd, ok := commands[sub]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%s: unknown command %q", cmd, sub)
	}
	return runCmd(ctx, rest, env, stdout, stderr)
}

// adminCommand runs one admin command, args being what follows its name.
type adminCommand func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// adminEnv returns a getenv that sees only the variables of adminEnvFlags.
func adminEnv(getenv func(string) string) func(string) string {
	if getenv == nil {
		return nil
	}
	return func(name string) string {
		for _, f := range adminEnvFlags {
			if name == envName(f) {
				return getenv(name)
			}
		}
		return ""
	}
}

// newAdminFlagSet returns a flag set for one admin command whose usage is
// text followed by the flags.
func newAdminFlagSet(name, text string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		fmt.Fprintf(fs.Output(), "\n--server, --admin-key and --ca can also be set as RYDES_SERVER, RYDES_ADMIN_KEY and RYDES_CA.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// adminFlags are the flags every admin command has.
type adminFlags struct {
	server   string
	adminKey string
	ca       string
	json     bool
}

// addAdminFlags defines --server, --admin-key, --ca and, if withJSON, --json
// on fs.
func addAdminFlags(fs *flag.FlagSet, withJSON bool) *adminFlags {
	var f adminFlags
	fs.StringVar(&f.server, "server", defaultServer, "base `URL` of the rydes server")
	fs.StringVar(&f.adminKey, "admin-key", "", "rydes's admin `key`, sent as a bearer token; prefer RYDES_ADMIN_KEY, as command lines are visible to other users")
	fs.StringVar(&f.ca, "ca", "", caFlagUsage)
	if withJSON {
		fs.BoolVar(&f.json, "json", false, "print what the server answered as JSON")
	}
	return &f
}

// client returns a client of the server the flags name, holding the admin
// key.
func (f *adminFlags) client() (*client.Client, error) {
	hc, err := httpClient(f.ca)
	if err != nil {
		return nil, err
	}
	return client.New(f.server, client.WithAPIKey(f.adminKey), client.WithHTTPClient(hc))
}

// explain adds to an authentication failure what to do about it; it returns
// any other error as it is.
func (f *adminFlags) explain(err error) error {
	p, ok := errors.AsType[*client.Problem](err)
	switch {
	case !ok:
		return err
	case p.Status == http.StatusUnauthorized && f.adminKey == "":
		return fmt.Errorf("%w (no admin key was given: set RYDES_ADMIN_KEY or --admin-key)", err)
	case p.Status == http.StatusUnauthorized || p.Status == http.StatusForbidden:
		return fmt.Errorf("%w (the server refused the admin key from RYDES_ADMIN_KEY or --admin-key)", err)
	}
	return err
}

// providerID returns the one positional argument of fs, a provider id.
func providerID(fs *flag.FlagSet, cmd string) (string, error) {
	switch fs.NArg() {
	case 1:
		return fs.Arg(0), nil
	case 0:
		return "", fmt.Errorf("%s: missing the provider id (see 'rydes %s -h')", cmd, cmd)
	default:
		return "", fmt.Errorf("%s takes one provider id, got %d arguments %q", cmd, fs.NArg(), fs.Args())
	}
}

const providersAddUsage = `Usage: rydes providers add ID --kind nats|webhook [flags]

Registers the provider ID and prints it with its credentials: its API key
(for answering over HTTP), its NATS user and password (for consuming its
queue over NATS) and, for a webhook provider, the secret rydes signs its
deliveries with. They are shown once: store them now. 'rydes providers
rotate ID' replaces lost ones.

The filter flags say which requests the provider is asked for; without any
it is asked for every request. Place patterns compare case-insensitively and
may use "*", such as "Frank*" or "* Airport".
`

// providersAdd runs "rydes providers add".
func providersAdd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers add", providersAddUsage, stderr)
	af := addAdminFlags(fs, true)
	var (
		req   client.CreateProviderRequest
		from  listFlag
		to    listFlag
		attrs = filterAttrFlag{}
	)
	fs.Func("kind", "how the provider gets requests, `nats|webhook` (required)", func(s string) error {
		req.Kind = rydes.ProviderKind(s)
		return nil
	})
	fs.StringVar(&req.Name, "name", "", "a name for people (default: the id)")
	fs.StringVar(&req.WebhookURL, "webhook-url", "", "`URL` rydes POSTs requests to (webhook providers only)")
	fs.Var(&from, "from", "a pickup place `pattern` served; repeat for more (default: any)")
	fs.Var(&to, "to", "a destination `pattern` served; repeat for more (default: any)")
	fs.IntVar(&req.Filter.MaxPassengers, "max-passengers", 0, "the most passengers taken (default: any)")
	fs.Var(attrs, "attr", "an attribute requests must carry, with its accepted values, as `key=v1,v2`; repeat for more")
	paused := fs.Bool("paused", false, "register the provider paused: asked for nothing until resumed")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := providerID(fs, "providers add")
	if err != nil {
		return err
	}
	if req.Kind == "" {
		return fmt.Errorf("providers add: --kind is required: %s or %s", rydes.ProviderKindNATS, rydes.ProviderKindWebhook)
	}
	req.ID = id
	req.Filter.From, req.Filter.To = from, to
	if len(attrs) > 0 {
		req.Filter.Attributes = attrs
	}
	if *paused {
		req.Status = rydes.ProviderPaused
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	p, creds, err := c.CreateProvider(ctx, req)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		return writeJSON(stdout, providerWithCredentials{p, creds})
	}
	if err := printProvider(stdout, p); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	return printCredentials(stdout, creds)
}

// providerWithCredentials is what add and rotate print with --json: the
// server's answer.
type providerWithCredentials struct {
	Provider    rydes.Provider            `json:"provider"`
	Credentials rydes.ProviderCredentials `json:"credentials"`
}

const providersListUsage = `Usage: rydes providers list [flags]

Lists the providers, one a line: id, kind, status, name and filter.
`

// providersList runs "rydes providers list".
func providersList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers list", providersListUsage, stderr)
	af := addAdminFlags(fs, true)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("providers list takes no arguments, got %q", fs.Args())
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ps, err := c.ListProviders(ctx)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		if ps == nil {
			ps = []rydes.Provider{}
		}
		return writeJSON(stdout, struct {
			Providers []rydes.Provider `json:"providers"`
		}{ps})
	}
	if len(ps) == 0 {
		fmt.Fprintln(stdout, "no providers")
		return nil
	}
	t := newTable(stdout)
	t.row("ID", "KIND", "STATUS", "NAME", "FILTER")
	for _, p := range ps {
		t.row(printable(p.ID), printable(string(p.Kind)), statusText(p), printable(p.Name), filterSummary(p.Filter))
	}
	return t.flush()
}

const providersGetUsage = `Usage: rydes providers get ID [flags]

Shows the provider ID: its kind, status, webhook URL and filter.
`

// providersGet runs "rydes providers get".
func providersGet(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers get", providersGetUsage, stderr)
	af := addAdminFlags(fs, true)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := providerID(fs, "providers get")
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	p, err := c.GetProvider(ctx, id)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		return writeJSON(stdout, p)
	}
	return printProvider(stdout, p)
}

const providersPauseUsage = `Usage: rydes providers pause ID [flags]

Pauses the provider ID: it is asked for no new request. It may still answer
the requests it was asked in.
`

const providersResumeUsage = `Usage: rydes providers resume ID [flags]

Resumes the provider ID, paused by 'rydes providers pause' or by rydes
itself (its webhook answered 410 Gone): it is asked for new requests again.
`

// providersPause runs "rydes providers pause".
func providersPause(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return setStatus(ctx, "pause", providersPauseUsage, rydes.ProviderPaused, args, getenv, stdout, stderr)
}

// providersResume runs "rydes providers resume".
func providersResume(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return setStatus(ctx, "resume", providersResumeUsage, rydes.ProviderActive, args, getenv, stdout, stderr)
}

// setStatus runs "rydes providers pause" or "resume" (cmd): it sets the
// provider's status to st.
func setStatus(ctx context.Context, cmd, usage string, st rydes.ProviderStatus, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers "+cmd, usage, stderr)
	af := addAdminFlags(fs, true)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := providerID(fs, "providers "+cmd)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	p, err := c.UpdateProvider(ctx, id, client.UpdateProviderRequest{Status: &st})
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		return writeJSON(stdout, p)
	}
	fmt.Fprintf(stdout, "provider %s is %s\n", printable(p.ID), statusText(p))
	return nil
}

const providersRmUsage = `Usage: rydes providers rm ID [flags]

Removes the provider ID: it is withdrawn from the open requests it was asked
in (which may complete them), its credentials stop working and its queue is
deleted. There is no undo.
`

// providersRm runs "rydes providers rm".
func providersRm(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers rm", providersRmUsage, stderr)
	af := addAdminFlags(fs, false)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := providerID(fs, "providers rm")
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if err := c.DeleteProvider(ctx, id); err != nil {
		return af.explain(err)
	}
	fmt.Fprintf(stdout, "provider %s removed\n", printable(id))
	return nil
}

const providersRotateUsage = `Usage: rydes providers rotate ID [flags]

Replaces the credentials of the provider ID and prints the new ones, shown
once: store them now. The old ones stop working at once, and the provider's
open NATS connections are closed.
`

// providersRotate runs "rydes providers rotate".
func providersRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers rotate", providersRotateUsage, stderr)
	af := addAdminFlags(fs, true)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := providerID(fs, "providers rotate")
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	p, creds, err := c.RotateProvider(ctx, id)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		return writeJSON(stdout, providerWithCredentials{p, creds})
	}
	fmt.Fprintf(stdout, "credentials of provider %s rotated: the old ones no longer work\n\n", printable(p.ID))
	return printCredentials(stdout, creds)
}

const providersStatsUsage = `Usage: rydes providers stats ID [flags]

Shows how the provider ID has been doing: how many requests it was asked
and how it answered them, its response times (from a request's creation to
the answer) and its queue: requests waiting, delivered but not acknowledged,
and the age of the oldest waiting one.
`

// providersStats runs "rydes providers stats".
func providersStats(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes providers stats", providersStatsUsage, stderr)
	af := addAdminFlags(fs, true)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	id, err := providerID(fs, "providers stats")
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	st, err := c.ProviderStats(ctx, id)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		return writeJSON(stdout, st)
	}
	t := newTable(stdout)
	t.row("provider", printable(st.Provider))
	for _, n := range []struct {
		name string
		n    int
	}{
		{"asked", st.Asked}, {"pending", st.Pending}, {"quoted", st.Quoted}, {"declined", st.Declined},
		{"timed out", st.TimedOut}, {"failed", st.Failed}, {"withdrawn", st.Withdrawn},
	} {
		t.row(n.name, strconv.Itoa(n.n))
	}
	t.row("response p50", roundDuration(st.ResponseP50))
	t.row("response p99", roundDuration(st.ResponseP99))
	t.row("queue depth", strconv.Itoa(st.QueueDepth))
	t.row("in flight", strconv.Itoa(st.InFlight))
	t.row("oldest pending age", roundDuration(st.OldestPendingAge))
	return t.flush()
}

const deadLettersListUsage = `Usage: rydes dead-letters list [flags]

Lists dead letters, newest first: deliveries to webhook providers that
exhausted their retries. When there are older ones, a last line says how to
list them.
`

// deadLettersList runs "rydes dead-letters list".
func deadLettersList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes dead-letters list", deadLettersListUsage, stderr)
	af := addAdminFlags(fs, true)
	var q client.DeadLetterQuery
	fs.StringVar(&q.Provider, "provider", "", "list the dead letters of this provider `id` only")
	fs.IntVar(&q.Limit, "limit", 0, "list at most this many (default: the server's)")
	fs.Int64Var(&q.Before, "before", 0, "list the dead letters older than this `id`, to page")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dead-letters list takes no arguments, got %q", fs.Args())
	}
	if q.Limit < 0 || q.Before < 0 {
		return errors.New("dead-letters list: --limit and --before must not be negative")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	page, err := c.ListDeadLetters(ctx, q)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		if page.DeadLetters == nil {
			page.DeadLetters = []rydes.DeadLetter{}
		}
		return writeJSON(stdout, page)
	}
	if len(page.DeadLetters) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
	} else {
		t := newTable(stdout)
		t.row("ID", "PROVIDER", "RFQ", "ATTEMPTS", "CREATED", "REPLAYED", "LAST ERROR")
		for _, dl := range page.DeadLetters {
			replayed := "-"
			if !dl.ReplayedAt.IsZero() {
				replayed = formatTime(dl.ReplayedAt)
			}
			t.row(strconv.FormatInt(dl.ID, 10), printable(dl.Provider), printable(dl.RFQID), strconv.Itoa(dl.Attempts),
				formatTime(dl.CreatedAt), replayed, printable(dl.LastError))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if page.NextBefore != 0 {
		more := "rydes dead-letters list --before " + strconv.FormatInt(page.NextBefore, 10)
		if q.Provider != "" {
			more += " --provider " + printable(q.Provider)
		}
		if q.Limit != 0 {
			more += " --limit " + strconv.Itoa(q.Limit)
		}
		fmt.Fprintf(stdout, "older ones: %s\n", more)
	}
	return nil
}

const deadLettersReplayUsage = `Usage: rydes dead-letters replay ID [flags]

Puts the request of the dead letter ID back on its provider's queue, for
another round of delivery. The request must still be open and the provider
still registered.
`

// deadLettersReplay runs "rydes dead-letters replay".
func deadLettersReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes dead-letters replay", deadLettersReplayUsage, stderr)
	af := addAdminFlags(fs, true)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var id int64
	switch fs.NArg() {
	case 0:
		return errors.New("dead-letters replay: missing the dead letter id (see 'rydes dead-letters replay -h')")
	case 1:
		n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("dead-letters replay: invalid dead letter id %q: must be a positive number", fs.Arg(0))
		}
		id = n
	default:
		return fmt.Errorf("dead-letters replay takes one dead letter id, got %d arguments %q", fs.NArg(), fs.Args())
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	dl, err := c.ReplayDeadLetter(ctx, id)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		return writeJSON(stdout, dl)
	}
	fmt.Fprintf(stdout, "dead letter %d replayed: rfq %s is on the queue of provider %s again\n",
		dl.ID, printable(dl.RFQID), printable(dl.Provider))
	return nil
}

// printProvider writes p as a readable summary, one field a line.
func printProvider(w io.Writer, p rydes.Provider) error {
	t := newTable(w)
	t.row("provider", printable(p.ID))
	t.row("name", printable(p.Name))
	t.row("kind", printable(string(p.Kind)))
	t.row("status", statusText(p))
	if p.WebhookURL != "" {
		t.row("webhook url", printable(p.WebhookURL))
	}
	t.row("filter", filterSummary(p.Filter))
	t.row("created", formatTime(p.CreatedAt))
	t.row("updated", formatTime(p.UpdatedAt))
	return t.flush()
}

// printCredentials writes creds under a note that they are shown once.
func printCredentials(w io.Writer, creds rydes.ProviderCredentials) error {
	fmt.Fprintln(w, "Credentials, shown once — store them now: rydes cannot show them again")
	fmt.Fprintln(w, "('rydes providers rotate' replaces them).")
	t := newTable(w)
	for _, c := range []struct{ name, value string }{
		{"api key", creds.APIKey},
		{"nats user", creds.NATSUser},
		{"nats password", creds.NATSPassword},
		{"webhook secret", creds.WebhookSecret},
	} {
		if c.value != "" {
			t.row("  "+c.name, printable(c.value))
		}
	}
	return t.flush()
}

// statusText returns p's status, with the reason rydes paused it if it did:
// "paused (webhook answered 410 Gone)".
func statusText(p rydes.Provider) string {
	s := printable(string(p.Status))
	if p.PausedReason != "" {
		s += " (" + printable(p.PausedReason) + ")"
	}
	return s
}

// filterSummary returns f on one line, such as
// "from Lisbon*,Porto; to Faro; max 4 passengers; color=pink,red", or
// "any request" for the zero filter.
func filterSummary(f rydes.Filter) string {
	if f.IsZero() {
		return "any request"
	}
	var parts []string
	if len(f.From) > 0 {
		parts = append(parts, "from "+strings.Join(f.From, ","))
	}
	if len(f.To) > 0 {
		parts = append(parts, "to "+strings.Join(f.To, ","))
	}
	if f.MaxPassengers > 0 {
		parts = append(parts, "max "+plural(f.MaxPassengers, "passenger"))
	}
	for _, k := range slices.Sorted(maps.Keys(f.Attributes)) {
		parts = append(parts, k+"="+strings.Join(f.Attributes[k], ","))
	}
	return printable(strings.Join(parts, "; "))
}

// roundDuration returns d rounded for people: to the millisecond from 1ms up,
// else to the microsecond.
func roundDuration(d rydes.Duration) string {
	v := time.Duration(d)
	if v >= time.Millisecond {
		return v.Round(time.Millisecond).String()
	}
	return v.Round(time.Microsecond).String()
}

// textTable writes aligned columns, without trailing spaces.
type textTable struct{ tw *tabwriter.Writer }

// newTable returns a textTable that writes to w.
func newTable(w io.Writer) *textTable {
	return &textTable{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

// row adds a line of cells; empty cells at its end are dropped.
func (t *textTable) row(cells ...string) {
	for len(cells) > 0 && cells[len(cells)-1] == "" {
		cells = cells[:len(cells)-1]
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// flush writes the table out.
func (t *textTable) flush() error { return t.tw.Flush() }

// listFlag is a repeatable flag.Value collecting its values in order.
type listFlag []string

// String returns the values joined by commas.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set adds s, which may not be blank.
func (l *listFlag) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be blank")
	}
	*l = append(*l, s)
	return nil
}

// filterAttrFlag is a repeatable flag.Value collecting the attributes of a
// filter, each given as key=v1,v2.
type filterAttrFlag map[string][]string

// String returns the attributes as "k1=v1,v2 k2=v3", sorted by key.
func (a filterAttrFlag) String() string {
	parts := make([]string, 0, len(a))
	for _, k := range slices.Sorted(maps.Keys(a)) {
		parts = append(parts, k+"="+strings.Join(a[k], ","))
	}
	return strings.Join(parts, " ")
}

// Set adds the attribute s, "key=v1,v2": a key and the comma-separated
// values accepted. The key may not be empty or given twice, nor a value be
// empty.
func (a filterAttrFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return errors.New("want key=value or key=v1,v2")
	}
	if _, dup := a[k]; dup {
		return fmt.Errorf("attribute %q given twice; list its values as %s=v1,v2", k, k)
	}
	vs := strings.Split(v, ",")
	if slices.Contains(vs, "") {
		return fmt.Errorf("attribute %q has an empty value", k)
	}
	a[k] = vs
	return nil
}
