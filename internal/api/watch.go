package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wildrydes/rydes"
)

// rfqETag returns the strong entity tag of an RFQ's current version,
// "<id>.<seq>": the seq grows with every event, so the tag changes with
// every change of the RFQ.
func rfqETag(rfq rydes.RFQ) string { return rfqETagOf(rfq.ID, rfq.Seq) }

// rfqETagOf is the ETag of version seq of RFQ id.
func rfqETagOf(id string, seq int64) string {
	return `"` + id + "." + strconv.FormatInt(seq, 10) + `"`
}

// etagMatches reports whether the If-None-Match header values match etag,
// with the weak comparison RFC 9110 prescribes for If-None-Match: "*"
// matches any current version, and W/ prefixes are ignored.
func etagMatches(values []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
				return true
			}
		}
	}
	return false
}

// parseWait returns the ?wait= of a query: 0 if absent, else a Go
// duration above 0 and at most maxWait.
func parseWait(q url.Values, maxWait time.Duration) (time.Duration, error) {
	if !q.Has("wait") {
		return 0, nil
	}
	bad := rydes.FieldErrorf("wait", "must be a duration above 0s and at most %s, such as \"20s\"", maxWait)
	if len(q["wait"]) != 1 {
		return 0, bad
	}
	if len(q.Get("wait")) > rydes.MaxTimeTextLen {
		return 0, bad
	}
	d, err := time.ParseDuration(q.Get("wait"))
	if err != nil || d <= 0 || d > maxWait {
		return 0, bad
	}
	return d, nil
}

// parseResume returns the seq after which an event stream resumes: the
// Last-Event-ID header, which a reconnecting EventSource sends, else the
// ?after= query parameter, else 0 (from the start). Both must be
// non-negative decimal integers.
func parseResume(r *http.Request) (int64, error) {
	var after int64
	q := r.URL.Query()
	if q.Has("after") {
		n, err := parseSeq("after", q["after"])
		if err != nil {
			return 0, err
		}
		after = n
	}
	if values := r.Header.Values("Last-Event-ID"); len(values) > 0 {
		return parseSeq("Last-Event-ID", values)
	}
	return after, nil
}

func parseSeq(field string, values []string) (int64, error) {
	bad := rydes.FieldErrorf(field, "must be a non-negative integer, the id of the last event received")
	if len(values) != 1 {
		return 0, bad
	}
	s := strings.TrimSpace(values[0])
	if s == "" || !allDigits(s) {
		return 0, bad
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, bad
	}
	return n, nil
}

// unavailable is the error of a route whose dependency this server was not
// given.
func unavailable(detail string) error {
	return &httpError{status: http.StatusServiceUnavailable, slug: "unavailable", title: "Service unavailable", detail: detail}
}

// liftDeadlines lifts the server's read and write deadlines on the
// request's connection for a response that is held open (a long poll, an
// event stream): the WriteTimeout would cut it, and a ReadTimeout would end
// the request's context. The server sets them again for the next request.
func liftDeadlines(w http.ResponseWriter, r *http.Request, logger *slog.Logger) {
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		logger.DebugContext(r.Context(), "lift write deadline", "path", r.URL.Path, "err", err)
	}
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		logger.DebugContext(r.Context(), "lift read deadline", "path", r.URL.Path, "err", err)
	}
}

// handleRFQEvents serves GET /v1/rfqs/{id}/events: the RFQ's events as
// server-sent events, after the one the client names (Last-Event-ID or
// ?after=), each as
//
//	id: <seq>
//	event: <type>
//	data: <the event as JSON, on one line>
//
// followed by a blank line, with a ": heartbeat" comment every heartbeat
// while idle. The stream ends after the final event; if the watch ends
// without one, the stream ends too, and the client reconnects with
// Last-Event-ID.
//
// A final RFQ whose events were all published is not watched: it gets the
// events the broker still keeps, then its final event, from the database
// if the broker no longer keeps it (it drops events after a day, sooner
// under heavy load; the database keeps RFQs for --retention).
//
// The connection's goroutine only waits: authentication, the reads of the
// store and the broker, and the writes to the client run on fresh stacks
// (see onFreshStack), so that a stream held open for hours keeps the
// smallest stack. authenticate is the customer routes' requireCustomer.
func handleRFQEvents(logger *slog.Logger, svc Service, watcher Watcher, heartbeat time.Duration, authenticate func(customerHandler) http.Handler) http.Handler {
	open := func(w http.ResponseWriter, r *http.Request, customer string) *eventStream {
		return openEventStream(w, r, logger, svc, watcher, customer)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := authenticateOnFreshStack(w, r, authenticate, open); s != nil {
			s.follow(heartbeat)
		} // else answered: an error, or every event of a final RFQ
	})
}

// eventStream is an open event stream: the response it writes to and the
// watch that feeds it.
type eventStream struct {
	ctx    context.Context
	w      http.ResponseWriter
	rc     *http.ResponseController
	logger *slog.Logger
	id     string
	watch  Watch
}

// openEventStream answers an event stream's request: with an error, or
// with the events after after, and the start of a watch for those to
// come. It returns the stream to follow, or nil once the response is
// complete: an error, or every event of a final RFQ.
func openEventStream(w http.ResponseWriter, r *http.Request, logger *slog.Logger, svc Service, watcher Watcher, customer string) *eventStream {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, logger, err)
		return nil
	}
	after, err := parseResume(r)
	if err != nil {
		writeError(w, r, logger, err)
		return nil
	}
	if watcher == nil {
		writeError(w, r, logger, unavailable("event streams are not available on this server"))
		return nil
	}
	ctx := r.Context()
	rfq, err := svc.GetRFQ(ctx, id, customer)
	if err != nil {
		writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
		return nil
	}
	var (
		watch Watch
		past  []rydes.Event // a final RFQ's, when they need no watch
	)
	// A final RFQ whose last event the client has gets an empty stream:
	// nothing will ever follow.
	done := rfq.Status.Final() && after >= rfq.Seq
	if !done && rfq.Status.Final() {
		events, published, err := watcher.PastEvents(ctx, id, after)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("past events of rfq %s: %w", id, err))
			return nil
		}
		if published {
			final, _ := rfq.FinalEvent()
			if len(events) == 0 || events[len(events)-1].Seq < final.Seq {
				events = append(events, final) // the broker no longer keeps it
			}
			past, done = events, true
		}
	}
	if !done {
		if watch, err = watcher.WatchRFQ(ctx, id, after); err != nil {
			writeError(w, r, logger, fmt.Errorf("watch rfq %s: %w", id, err))
			return nil
		}
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	liftDeadlines(w, r, logger)
	s := &eventStream{ctx: ctx, w: w, rc: http.NewResponseController(w), logger: logger, id: id, watch: watch}
	w.WriteHeader(http.StatusOK)
	ok := true
	for _, ev := range past {
		if ok = writeEvent(ctx, w, logger, ev); !ok {
			break
		}
	}
	if !ok || !s.flush() || done {
		if watch != nil {
			watch.Close()
		}
		return nil
	}
	return s
}

// follow streams the watch's events as they come, with a heartbeat every
// heartbeat while idle, until the final event, the end of the watch or the
// client's going. The watch runs on this goroutine: it wakes it through
// Ready, and hands over what came with Next, on a fresh stack.
func (s *eventStream) follow(heartbeat time.Duration) {
	defer onFreshStack(s.watch.Close)
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		more := false
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			onFreshStack(func() { more = s.heartbeat() })
		case <-s.watch.Ready():
			onFreshStack(func() { more = s.deliver() })
		}
		if !more {
			return
		}
	}
}

// deliver writes the events the watch has ready, and reports whether the
// stream goes on: not after the final event, nor once the watch ended or
// the client is gone.
func (s *eventStream) deliver() bool {
	events, err := s.watch.Next(s.ctx)
	if err != nil {
		s.logger.DebugContext(s.ctx, "event stream ended without a final event", "rfq", s.id, "err", err)
		return false
	}
	if len(events) == 0 {
		return true // woken with nothing new
	}
	for _, ev := range events {
		if !writeEvent(s.ctx, s.w, s.logger, ev) {
			return false
		}
		if ev.Type.Final() {
			// Next returns nothing after the final event.
			s.flush()
			return false
		}
	}
	return s.flush()
}

// heartbeat writes a comment that keeps proxies from closing an idle
// stream, and reports whether the client is still there.
func (s *eventStream) heartbeat() bool {
	if _, err := io.WriteString(s.w, ": heartbeat\n\n"); err != nil {
		s.logger.DebugContext(s.ctx, "write event stream", "rfq", s.id, "err", err)
		return false
	}
	return s.flush()
}

// flush sends what was written, and reports whether it could.
func (s *eventStream) flush() bool {
	if err := s.rc.Flush(); err != nil {
		s.logger.DebugContext(s.ctx, "flush event stream", "rfq", s.id, "err", err)
		return false
	}
	return true
}

// writeEvent writes ev to an event stream, and reports whether it could.
func writeEvent(ctx context.Context, w io.Writer, logger *slog.Logger, ev rydes.Event) bool {
	frame, err := eventFrame(ev)
	if err != nil {
		logger.ErrorContext(ctx, "encode event", "rfq", ev.RFQID, "seq", ev.Seq, "err", err)
		return false
	}
	if _, err := w.Write(frame); err != nil {
		logger.DebugContext(ctx, "write event stream", "rfq", ev.RFQID, "err", err)
		return false
	}
	return true
}

// eventFrame returns ev as one server-sent event. json.Marshal writes no
// raw newline, so the data fits on one line; the type, a rydes constant,
// is checked all the same, since a newline there would forge a field.
func eventFrame(ev rydes.Event) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(string(ev.Type), "\r\n") {
		return nil, fmt.Errorf("event type %q holds a line break", ev.Type)
	}
	b := make([]byte, 0, len(data)+64)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, ev.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	return b, nil
}
