package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// eventsOf returns the event stream that leads to the RFQ r: created, an
// event per answered provider in the order they answered, then r's final
// event if r is final.
func eventsOf(r rydes.RFQ) []rydes.Event {
	evs := []rydes.Event{{Type: rydes.EventCreated, At: r.CreatedAt, Status: rydes.StatusOpen}}
	entries := slices.Clone(r.Providers)
	slices.SortStableFunc(entries, func(a, b rydes.RosterEntry) int { return a.ChangedAt.Compare(b.ChangedAt) })
	for _, e := range entries {
		ev := rydes.Event{Provider: e.Provider, At: e.ChangedAt, Reason: e.Reason, Status: rydes.StatusOpen}
		switch e.State {
		case rydes.ProviderQuoted:
			ev.Type = rydes.EventQuote
			for _, q := range r.Quotes {
				if q.Provider == e.Provider {
					ev.Quote = &q
				}
			}
		case rydes.ProviderDeclined:
			ev.Type = rydes.EventDecline
		case rydes.ProviderTimedOut:
			ev.Type = rydes.EventProviderTimedOut
		default:
			continue
		}
		evs = append(evs, ev)
	}
	if r.Status.Final() {
		evs = append(evs, rydes.Event{Type: rydes.EventType(r.Status), At: r.ClosedAt, Status: r.Status})
	}
	for i := range evs {
		evs[i].RFQID, evs[i].Seq, evs[i].Customer = r.ID, int64(i+1), r.Customer
	}
	return evs
}

// withStream makes the stub serve evs as the RFQ's event stream.
func (s *stubAPI) withStream(evs []rydes.Event) *stubAPI {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = evs
	return s
}

// stream serves the event stream as rydes does: the events after
// Last-Event-ID, a heartbeat between them, and the end after the final one.
func (s *stubAPI) stream(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	evs := s.events
	s.mu.Unlock()
	if evs == nil {
		http.NotFound(w, r)
		return
	}
	after, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	w.Header().Set("Content-Type", "text/event-stream")
	for _, e := range evs {
		if e.Seq <= after {
			continue
		}
		b, _ := json.Marshal(e)
		fmt.Fprintf(w, ": heartbeat\n\nid: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
		w.(http.Flusher).Flush()
	}
}

// paths returns the paths of the requests the stub saw, "METHOD path".
func (s *stubAPI) paths() []string {
	var ps []string
	for _, r := range s.requests() {
		ps = append(ps, r.method+" "+r.path)
	}
	return ps
}

// terminal is an output that says it is a terminal, or not.
type terminal struct {
	bytes.Buffer
	is bool
}

func (t *terminal) IsTerminal() bool { return t.is }

// cliOn runs "rydes rfq args..." with stdout on out.
func cliOn(t *testing.T, env map[string]string, out *terminal, args ...string) error {
	t.Helper()
	var errOut bytes.Buffer
	return runRFQ(rydestest.Context(t), args, func(k string) string { return env[k] }, out, &errOut)
}

// The answers of the complete RFQ of the tests, and its lines.
var (
	completeAnswers = []answer{quoted(1, 2*time.Second, "20.00", 300), declined(2, 3*time.Second, "no unicorns free"),
		quoted(0, 4*time.Second, "12.00", 0), quoted(3, 5*time.Second, "15.50", 60)}
	completeLines = "quote     UnicornManagementResource2  20.00 USD  eta 5m0s\n" +
		"declined  UnicornManagementResource3  no unicorns free\n" +
		"quote     UnicornManagementResource1  12.00 USD\n" +
		"quote     UnicornManagementResource4  15.50 USD  eta 1m0s\n" +
		"complete: 3 quotes, 1 declined, 0 timed out; best 12.00 USD from UnicornManagementResource1\n"
)

func TestRFQCreateWatchPlain(t *testing.T) {
	final := fixture(rydes.StatusComplete, completeAnswers...)
	for _, flag := range []string{"--watch", "--wait"} {
		t.Run(flag, func(t *testing.T) {
			stub := newStub(t, final).withStream(eventsOf(final))
			out, _, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice", flag)
			require.NoError(t, err)
			require.Equal(t, createdOut+completeLines, out, "a line per event, then the outcome")
			require.Equal(t, []string{"POST /v1/rfqs", "GET /v1/rfqs/" + testID + "/events", "GET /v1/rfqs/" + testID},
				stub.paths(), "the stream, not polling; then the final RFQ")
		})
	}
}

func TestRFQWatchExitCodes(t *testing.T) {
	for _, tc := range []struct {
		final rydes.RFQ
		lines string
		code  int
		err   string
	}{{
		final: fixture(rydes.StatusExpired, quoted(2, time.Second, "30.00", 0), declined(0, 2*time.Second, ""), timedOut(1), timedOut(3)),
		lines: "quote     UnicornManagementResource3  30.00 USD\n" +
			"declined  UnicornManagementResource1\n" +
			"timed out UnicornManagementResource2\n" +
			"timed out UnicornManagementResource4\n" +
			"expired: 1 quote, 1 declined, 2 timed out; best 30.00 USD from UnicornManagementResource3\n",
		code: exitExpired,
		err:  "rfq " + testID + " expired before every provider answered",
	}, {
		final: fixture(rydes.StatusCancelled, declined(3, time.Second, "")),
		lines: "declined  UnicornManagementResource4\n" +
			"cancelled: 0 quotes, 1 declined, 0 timed out, 3 pending; no quotes\n",
		code: exitCancelled,
		err:  "rfq " + testID + " was cancelled",
	}, {
		final: fixture(rydes.StatusComplete, completeAnswers...),
		lines: completeLines,
		code:  0,
	}} {
		t.Run(string(tc.final.Status), func(t *testing.T) {
			// create --watch
			stub := newStub(t, tc.final).withStream(eventsOf(tc.final))
			out, _, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice", "--watch")
			require.Equal(t, createdOut+tc.lines, out)
			require.Equal(t, tc.code, exitCodeOf(err), "err: %v", err)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
			}

			// watch ID, with --json: the same lines on stderr, the final RFQ on stdout.
			out, errOut, err := cli(t, nil, "watch", testID, "--server", stub.URL, "--json")
			require.Equal(t, tc.code, exitCodeOf(err), "err: %v", err)
			require.Equal(t, createdOut+tc.lines, errOut)
			var got rydes.RFQ
			require.NoError(t, json.Unmarshal([]byte(out), &got), "stdout: %s", out)
			require.Equal(t, tc.final, got)
		})
	}
}

func TestRFQWatchPolls(t *testing.T) {
	// A server without the event stream is polled.
	final := fixture(rydes.StatusComplete, completeAnswers...)
	stub := newStub(t, fixture(rydes.StatusOpen), fixture(rydes.StatusOpen, completeAnswers[:2]...), final)
	out, _, err := cli(t, nil, "watch", testID, "--server", stub.URL, "--poll", "1ms")
	require.NoError(t, err)
	require.Equal(t, createdOut+completeLines, out)
	require.Equal(t, "GET /v1/rfqs/"+testID+"/events", stub.paths()[1])
	require.Len(t, stub.requests(), 1+1+2, "the RFQ, the stream (404), then a GET per later step")

	// An RFQ that is not there is an error.
	_, _, err = cli(t, nil, "watch", "6f1c1e1e-0000-4000-8000-000000000000", "--server", stub.URL)
	require.EqualError(t, err, "404 not_found: rfq 6f1c1e1e-0000-4000-8000-000000000000 not found")
	require.Equal(t, 1, exitCodeOf(err))
}

// redraw matches the escape sequence that takes the cursor back to the top of
// a table of n lines and clears the screen below.
var redraw = regexp.MustCompile(`\r\x1b\[(\d+)A\x1b\[J`)

func TestRFQCreateWatchTerminal(t *testing.T) {
	final := fixture(rydes.StatusComplete, completeAnswers...)
	stub := newStub(t, final).withStream(eventsOf(final))
	out := &terminal{is: true}
	err := cliOn(t, nil, out, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice", "--watch")
	require.NoError(t, err)
	s := out.String()

	require.True(t, strings.HasPrefix(s, createdOut), s)
	require.NotContains(t, s, "declined  UnicornManagementResource3  no unicorns free\n", "a table, not lines")
	// A table for the start, one per event (created, 4 answers, complete)
	// and one for the final RFQ, at least; ticks may add more.
	redraws := redraw.FindAllStringSubmatchIndex(s, -1)
	require.GreaterOrEqual(t, len(redraws), 1+6)
	// Each redraw goes back over exactly the table drawn before it.
	prev := len(createdOut)
	for _, m := range redraws {
		n, _ := strconv.Atoi(s[m[2]:m[3]])
		require.Equal(t, strings.Count(s[prev:m[0]], "\n"), n, "lines drawn before %q", s[prev:m[0]])
		prev = m[1]
	}

	tables := redraw.Split(strings.TrimPrefix(s, createdOut), -1)
	require.Regexp(t, `^quotes: none yet\nproviders \(4\):\n  UnicornManagementResource1  pending\n(.*\n){3}answered 0/4 · \d[0-9hms]* left\n$`, tables[0])
	require.Contains(t, s, "quotes (1), best first:\n  UnicornManagementResource2  20.00 USD  eta 5m0s\n")
	require.Contains(t, s, "answered 2/4 · ", "the progress line after the decline")

	last := tables[len(tables)-1]
	require.Equal(t, `quotes (3), best first:
  UnicornManagementResource1  12.00 USD
  UnicornManagementResource4  15.50 USD  eta 1m0s
  UnicornManagementResource2  20.00 USD  eta 5m0s
providers (4):
  UnicornManagementResource1  quoted
  UnicornManagementResource2  quoted
  UnicornManagementResource3  declined  no unicorns free
  UnicornManagementResource4  quoted
answered 4/4 · complete
complete: 3 quotes, 1 declined, 0 timed out; best 12.00 USD from UnicornManagementResource1
`, last, "the final table, then the outcome")

	// --wait, TERM=dumb and a pipe print lines even on a terminal.
	for _, tc := range []struct {
		env  map[string]string
		out  *terminal
		flag string
	}{
		{nil, &terminal{is: true}, "--wait"},
		{map[string]string{"TERM": "dumb"}, &terminal{is: true}, "--watch"},
		{nil, &terminal{is: false}, "--watch"},
	} {
		err := cliOn(t, tc.env, tc.out, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice", tc.flag)
		require.NoError(t, err)
		require.Equal(t, createdOut+completeLines, tc.out.String(), "%s, env %v, terminal %v", tc.flag, tc.env, tc.out.is)
	}
}

func TestLiveViewProgress(t *testing.T) {
	var out bytes.Buffer
	now := t0.Add(33*time.Second + 200*time.Millisecond)
	v := &liveView{w: &out, rfq: fixture(rydes.StatusOpen), now: func() time.Time { return now }}
	evs := eventsOf(fixture(rydes.StatusOpen, quoted(1, 2*time.Second, "20.00", 300), declined(2, 3*time.Second, "")))
	for _, e := range evs {
		v.event(e)
	}
	v.event(evs[1]) // a repeat changes nothing
	require.Equal(t, "answered 2/4 · 12s left", v.progressLine())
	require.Len(t, v.rfq.Quotes, 1)

	out.Reset()
	now = now.Add(time.Second)
	v.tick()
	require.Equal(t, "\r\x1b[8A\x1b[J"+`quotes (1), best first:
  UnicornManagementResource2  20.00 USD  eta 5m0s
providers (4):
  UnicornManagementResource1  pending
  UnicornManagementResource2  quoted
  UnicornManagementResource3  declined
  UnicornManagementResource4  pending
answered 2/4 · 11s left
`, out.String(), "a tick redraws the table with the time left")

	now = now.Add(time.Hour)
	require.Equal(t, "answered 2/4 · 0s left", v.progressLine())
}

func TestRFQWatchBadArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch"}, "rfq watch: missing the RFQ id"},
		{[]string{"watch", testID, testID}, "rfq watch takes one RFQ id, got 2 arguments"},
		{[]string{"watch", "not-an-id"}, `invalid RFQ id "not-an-id"`},
		{[]string{"watch", testID, "--poll", "0s"}, "--poll must be positive"},
	} {
		_, _, err := cli(t, nil, tc.args...)
		require.ErrorContains(t, err, tc.want, "args %q", tc.args)
		require.Equal(t, 1, exitCodeOf(err))
	}
	_, errOut, err := cli(t, nil, "watch", "-h")
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Contains(t, errOut, "Usage: rydes rfq watch ID")
	_, errOut, _ = cli(t, nil, "create", "-h")
	require.Contains(t, errOut, "-watch")
}
