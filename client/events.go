package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/wildrydes/rydes"
)

// Bounds of Events.
const (
	// MaxEventBytes is the largest event (all of its data lines) Events
	// reads; a bigger one fails the call.
	MaxEventBytes = 1 << 20
	// EventsIdleTimeout is how long Events waits for anything (an event or a
	// heartbeat) on a connection before it takes it for dropped and
	// reconnects.
	EventsIdleTimeout = 60 * time.Second
)

// Reconnection policy of Events.
const (
	// eventsRetries is how many reconnections in a row, without an event
	// between them, Events makes before it gives up.
	eventsRetries = 5
	// eventsBackoff is the wait before the first reconnection; it doubles
	// with each further one, up to eventsMaxBackoff. A retry field sent by
	// the server replaces it.
	eventsBackoff    = 250 * time.Millisecond
	eventsMaxBackoff = 5 * time.Second
)

// Events follows the event stream of the RFQ with the given id (GET
// /v1/rfqs/{id}/events) and calls fn with each of its events after afterSeq,
// in order of seq; afterSeq 0 asks for all of them. It returns nil after fn
// was called with the final event (complete, expired or cancelled).
//
// Events are delivered exactly once: after a dropped connection Events
// reconnects, sending the seq of the last event delivered as Last-Event-ID,
// and skips any event it already delivered. A seq that skips one is an
// error, as the events in between are lost. A connection on which nothing,
// not even a heartbeat, arrives for EventsIdleTimeout is taken for dropped.
// Up to five reconnections in a row without an event in between (network
// errors, an early end of the stream, 429, 502, 503 and 504) are made, with
// a growing wait between them (or the wait the server asks for with a retry
// field, or with Retry-After on a 429 or 503, if longer); then Events gives
// up.
//
// A response other than a stream, such as a 404 for an unknown RFQ, is
// returned as a *Problem. If fn returns an error, Events stops and returns
// it. ctx bounds the whole call, reconnections included; the timeout of the
// Client's http.Client does not apply to the stream.
func (c *Client) Events(ctx context.Context, id string, afterSeq int64, fn func(rydes.Event) error) error {
	path, err := rfqPath(id)
	if err != nil {
		return err
	}
	path += "/events"
	if afterSeq < 0 {
		return fmt.Errorf("rydes client: events of rfq %s: negative seq %d", id, afterSeq)
	}
	// The stream lasts as long as the RFQ is open: the whole-exchange
	// timeout of the http.Client would cut it. EventsIdleTimeout and ctx
	// bound it instead.
	hc := *c.http
	hc.Timeout = 0
	s := &eventStream{c: c, http: &hc, id: id, path: path, last: afterSeq, fn: fn}

	backoff := eventsBackoff
	for failures := 0; ; failures++ {
		delivered := s.last
		done, err := s.connect(ctx)
		switch {
		case done:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case s.last > delivered:
			// Progress: the connection dropped after delivering events.
			failures, backoff = 0, eventsBackoff
		}
		if failures >= eventsRetries {
			return fmt.Errorf("rydes client: events of rfq %s: gave up after %d reconnections: %w", id, eventsRetries, err)
		}
		wait := backoff
		if s.retry > 0 {
			wait = s.retry
		}
		wait = max(wait, retryAfter(err))
		backoff = min(2*backoff, eventsMaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// eventStream is the state Events keeps across connections.
type eventStream struct {
	c     *Client
	http  *http.Client // c's, without a timeout
	id    string
	path  string
	last  int64         // seq of the last event delivered to fn
	retry time.Duration // reconnection wait the server asked for; 0 for none
	fn    func(rydes.Event) error
}

// errDropped is the error of a stream that ended before the final event.
var errDropped = errors.New("the stream ended before the final event")

// connect makes one connection and reads events from it. done is true when
// Events must return err (nil after the final event); otherwise err is why
// the connection failed, and another may be made.
func (s *eventStream) connect(ctx context.Context) (done bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := errors.New("no event or heartbeat for " + EventsIdleTimeout.String())
	watchdog := time.AfterFunc(EventsIdleTimeout, func() { cancel(idle) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.c.base+s.path, nil)
	if err != nil {
		return true, fmt.Errorf("rydes client: GET %s: %w", s.path, err)
	}
	req.Header.Set("Accept", "text/event-stream, application/problem+json")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", userAgent)
	if s.c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.c.apiKey)
	}
	if s.last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(s.last, 10))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause == idle {
			err = cause
		}
		return false, fmt.Errorf("rydes client: %w", err)
	}
	defer func() {
		_ = resp.Body.Close()
	}()

	if resp.StatusCode != http.StatusOK {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxProblemBytes))
		p := problemOf(resp, b, rerr)
		return !transient(p), p
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, snippetLen))
		return true, fmt.Errorf("rydes client: GET %s: 200 response is %q, not an event stream: %s",
			s.path, resp.Header.Get("Content-Type"), snippet(b))
	}

	done, err = s.read(resp.Body, func() { watchdog.Reset(EventsIdleTimeout) })
	if err != nil && !done {
		if cause := context.Cause(ctx); cause == idle {
			err = cause
		}
		err = fmt.Errorf("rydes client: events of rfq %s: %w", s.id, err)
	}
	return done, err
}

// read parses the event stream r as the HTML standard's "server-sent
// events" says, calling alive on every line read, and hands each event to
// deliver. It returns when the stream ends or fails, or an event was final,
// with done as for connect.
func (s *eventStream) read(r io.Reader, alive func()) (done bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), MaxEventBytes+64)
	sc.Split(scanLines)
	var (
		data    bytes.Buffer
		hasData bool
	)
	for sc.Scan() {
		alive()
		line := sc.Bytes()
		if len(line) == 0 { // a blank line dispatches the event
			if !hasData {
				continue
			}
			done, err := s.deliver(bytes.TrimSuffix(data.Bytes(), []byte("\n")))
			data.Reset()
			hasData = false
			if done || err != nil {
				return true, err
			}
			continue
		}
		if line[0] == ':' { // a comment, such as ": heartbeat"
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if data.Len()+len(value) > MaxEventBytes {
				return true, fmt.Errorf("rydes client: events of rfq %s: an event exceeds %d bytes", s.id, MaxEventBytes)
			}
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		case "id", "event":
			// The seq and the type are in the data too; Last-Event-ID is
			// the seq of the last event delivered.
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return true, fmt.Errorf("rydes client: events of rfq %s: a line exceeds %d bytes", s.id, MaxEventBytes)
		}
		return false, err
	}
	return false, errDropped // an event not ended by a blank line is dropped, too
}

// deliver decodes one event's data and hands it to fn, unless it was
// delivered before. done is true after the final event.
func (s *eventStream) deliver(data []byte) (done bool, err error) {
	var e rydes.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return true, fmt.Errorf("rydes client: events of rfq %s: decode event: %w: %s", s.id, err, snippet(data))
	}
	switch {
	case e.RFQID != s.id:
		return true, fmt.Errorf("rydes client: events of rfq %s: got an event of rfq %q", s.id, clean(e.RFQID))
	case e.Seq <= s.last:
		return false, nil // a repeat, after a reconnection
	case e.Seq > s.last+1:
		return true, fmt.Errorf("rydes client: events of rfq %s: got event %d after %d: events %d to %d are missing",
			s.id, e.Seq, s.last, s.last+1, e.Seq-1)
	}
	s.last = e.Seq
	if err := s.fn(e); err != nil {
		return true, err
	}
	return e.Type.Final(), nil
}

// scanLines is a bufio.SplitFunc for the lines of an event stream, which
// end with "\r\n", "\n" or "\r". A final line without an end is returned
// too; read drops the event it belongs to.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // a "\r" last: is a "\n" next?
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
