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
func handleRFQEvents(logger *slog.Logger, svc Service, watcher Watcher, heartbeat time.Duration) customerHandler {
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		after, err := parseResume(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if watcher == nil {
			writeError(w, r, logger, unavailable("event streams are not available on this server"))
			return
		}
		rfq, err := svc.GetRFQ(r.Context(), id, customer)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
			return
		}
		ctx := r.Context()
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
				return
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
				return
			}
			defer watch.Close()
		}

		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		liftDeadlines(w, r, logger)
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		for _, ev := range past {
			if !writeEvent(ctx, w, logger, ev) {
				return
			}
		}
		if err := rc.Flush(); err != nil || done {
			return
		}

		// The watch runs on this goroutine: it wakes it through Ready,
		// and hands over what came with Next.
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
					logger.DebugContext(ctx, "write event stream", "rfq", id, "err", err)
					return
				}
			case <-watch.Ready():
				events, err := watch.Next(ctx)
				if err != nil {
					logger.DebugContext(ctx, "event stream ended without a final event", "rfq", id, "err", err)
					return
				}
				if len(events) == 0 {
					continue // woken with nothing new
				}
				for _, ev := range events {
					if !writeEvent(ctx, w, logger, ev) {
						return
					}
					// Next returns nothing after the final event.
					done = ev.Type.Final()
				}
			}
			if err := rc.Flush(); err != nil {
				logger.DebugContext(ctx, "flush event stream", "rfq", id, "err", err)
				return
			}
			if done {
				return
			}
		}
	}
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
