package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/rydestest"
)

const eventsID = "8b095f9e-cffc-4790-91a6-28353fa30e42"

// events returns the events of an RFQ that was created, got a quote and a
// decline, and then final; seq i+1 is at index i.
func events(final rydes.EventType, status rydes.Status) []rydes.Event {
	eta := 300
	mk := func(seq int64, typ rydes.EventType, provider string, st rydes.Status) rydes.Event {
		return rydes.Event{RFQID: eventsID, Seq: seq, Type: typ, At: now.Add(time.Duration(seq) * time.Second),
			Customer: "alice", Provider: provider, Status: st}
	}
	evs := []rydes.Event{
		mk(1, rydes.EventCreated, "", rydes.StatusOpen),
		mk(2, rydes.EventQuote, asked[0], rydes.StatusOpen),
		mk(3, rydes.EventDecline, asked[1], rydes.StatusOpen),
		mk(4, final, "", status),
	}
	evs[1].Quote = &rydes.Quote{Provider: asked[0], Price: rydes.Price{Amount: "12.00", Currency: "USD"}, ETASeconds: &eta, ReceivedAt: evs[1].At}
	evs[2].Reason = "no unicorns free"
	return evs
}

// sseStub serves GET /v1/rfqs/{id}/events with serve, called with the
// number of the connection (0 for the first), and records the Last-Event-ID
// of each connection.
type sseStub struct {
	serve func(w http.ResponseWriter, r *http.Request, n int)

	mu          sync.Mutex
	lastEventID []string
}

func newSSEStub(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, n int)) (*sseStub, *client.Client) {
	t.Helper()
	s := &sseStub{serve: serve}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/rfqs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != eventsID {
			writeProblem(w, http.StatusNotFound, "not_found", "rfq "+r.PathValue("id")+" not found", nil)
			return
		}
		s.mu.Lock()
		n := len(s.lastEventID)
		s.lastEventID = append(s.lastEventID, r.Header.Get("Last-Event-ID"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		s.serve(w, r, n)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, newClient(t, srv)
}

// connections returns the Last-Event-ID of each connection so far.
func (s *sseStub) connections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lastEventID...)
}

// frame writes e as one event and flushes it.
func frame(w http.ResponseWriter, e rydes.Event) {
	b, _ := json.Marshal(e)
	fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
	w.(http.Flusher).Flush()
}

// collect returns an fn for Events that appends to got.
func collect(got *[]rydes.Event) func(rydes.Event) error {
	return func(e rydes.Event) error {
		*got = append(*got, e)
		return nil
	}
}

// seqs returns the seqs of evs.
func seqs(evs []rydes.Event) []int64 {
	s := make([]int64, len(evs))
	for i, e := range evs {
		s[i] = e.Seq
	}
	return s
}

func TestEventsInOrder(t *testing.T) {
	want := events(rydes.EventComplete, rydes.StatusComplete)
	stub, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		fmt.Fprint(w, ": heartbeat\n\nretry: 1000\n\n")
		frame(w, want[0])
		// Data split over lines, CRLF line ends and a heartbeat between
		// fields make one event all the same.
		b, _ := json.MarshalIndent(want[1], "", "  ")
		fmt.Fprintf(w, "id: 2\r\n: heartbeat\r\nevent: quote\r\ndata: %s\r\n\r\n", strings.ReplaceAll(string(b), "\n", "\r\ndata: "))
		fmt.Fprint(w, ": heartbeat\n\n")
		frame(w, want[2])
		fmt.Fprint(w, "event: ignored\n\n") // no data: no event
		frame(w, want[3])
		// Events returns after the final event without waiting for the
		// stream to end.
		<-r.Context().Done()
	})
	var got []rydes.Event
	require.NoError(t, c.Events(rydestest.Context(t), eventsID, 0, collect(&got)))
	require.Equal(t, want, got)
	require.Equal(t, []string{""}, stub.connections(), "one connection, no Last-Event-ID")
}

func TestEventsResume(t *testing.T) {
	all := events(rydes.EventExpired, rydes.StatusExpired)
	stub, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			fmt.Fprint(w, "retry: 1\n\n") // reconnect at once
			frame(w, all[0])
			frame(w, all[1])
			return // the connection drops
		}
		// The server sends what follows Last-Event-ID, and the one before
		// it again: Events must not deliver it twice.
		frame(w, all[1])
		frame(w, all[2])
		frame(w, all[3])
	})
	var got []rydes.Event
	require.NoError(t, c.Events(rydestest.Context(t), eventsID, 0, collect(&got)))
	require.Equal(t, all, got, "each event once, in order")
	require.Equal(t, []string{"", "2"}, stub.connections(), "the second connection resumes after seq 2")
}

func TestEventsAfterSeq(t *testing.T) {
	all := events(rydes.EventCancelled, rydes.StatusCancelled)
	stub, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		frame(w, all[2])
		frame(w, all[3])
	})
	var got []rydes.Event
	require.NoError(t, c.Events(rydestest.Context(t), eventsID, 2, collect(&got)))
	require.Equal(t, []int64{3, 4}, seqs(got))
	require.Equal(t, []string{"2"}, stub.connections())
}

func TestEventsGap(t *testing.T) {
	all := events(rydes.EventComplete, rydes.StatusComplete)
	_, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		frame(w, all[0])
		frame(w, all[2])
		frame(w, all[3])
	})
	var got []rydes.Event
	err := c.Events(rydestest.Context(t), eventsID, 0, collect(&got))
	require.ErrorContains(t, err, "got event 3 after 1: events 2 to 2 are missing")
	require.Equal(t, []int64{1}, seqs(got), "nothing after the gap")
}

func TestEventsGivesUp(t *testing.T) {
	all := events(rydes.EventComplete, rydes.StatusComplete)
	stub, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		fmt.Fprint(w, "retry: 1\n\n")
		if n == 0 {
			frame(w, all[0])
		}
		fmt.Fprint(w, "data: {\"rfq_id\": \"half an event\"") // then the connection drops
	})
	var got []rydes.Event
	err := c.Events(rydestest.Context(t), eventsID, 0, collect(&got))
	require.ErrorContains(t, err, "gave up after 5 reconnections")
	require.ErrorContains(t, err, "the stream ended before the final event")
	require.Equal(t, []int64{1}, seqs(got))
	require.Equal(t, []string{"", "1", "1", "1", "1", "1"}, stub.connections())
}

func TestEventsNotFound(t *testing.T) {
	stub, c := newSSEStub(t, nil)
	err := c.Events(rydestest.Context(t), "6f1c1e1e-0000-4000-8000-000000000000", 0, func(rydes.Event) error {
		t.Error("no event expected")
		return nil
	})
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusNotFound, p.Status)
	require.Equal(t, rydes.ENOTFOUND, p.Code())
	require.Equal(t, "404 not_found: rfq 6f1c1e1e-0000-4000-8000-000000000000 not found", err.Error())
	require.Empty(t, stub.connections(), "a 404 is not retried")

	require.ErrorContains(t, c.Events(rydestest.Context(t), "../x", 0, nil), "invalid RFQ id")
}

func TestEventsTransientStatus(t *testing.T) {
	all := events(rydes.EventComplete, rydes.StatusComplete)
	var once sync.Once
	stub, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		retried := false
		once.Do(func() {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusServiceUnavailable)
			retried = true
		})
		if retried {
			return
		}
		for _, e := range all {
			frame(w, e)
		}
	})
	var got []rydes.Event
	require.NoError(t, c.Events(rydestest.Context(t), eventsID, 0, collect(&got)))
	require.Equal(t, all, got)
	require.Len(t, stub.connections(), 2, "a 503 is retried")
}

func TestEventsStops(t *testing.T) {
	all := events(rydes.EventComplete, rydes.StatusComplete)
	serve := func(w http.ResponseWriter, r *http.Request, n int) {
		frame(w, all[0])
		frame(w, all[1])
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
				fmt.Fprint(w, ": heartbeat\n\n")
				w.(http.Flusher).Flush()
			}
		}
	}

	// fn's error stops Events.
	_, c := newSSEStub(t, serve)
	boom := errors.New("boom")
	var got []rydes.Event
	err := c.Events(rydestest.Context(t), eventsID, 0, func(e rydes.Event) error {
		got = append(got, e)
		if e.Seq == 2 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, []int64{1, 2}, seqs(got))

	// So does the end of ctx, with heartbeats flowing.
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	defer cancel()
	err = c.Events(ctx, eventsID, 0, func(e rydes.Event) error {
		if e.Seq == 2 {
			cancel()
		}
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
}

func TestEventsNotAStream(t *testing.T) {
	_, c := newSSEStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>login</html>")
	})
	err := c.Events(rydestest.Context(t), eventsID, 0, func(rydes.Event) error { return nil })
	require.ErrorContains(t, err, `200 response is "text/html", not an event stream: <html>login</html>`)
}
