package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/wildrydes/rydes"
)

// createRFQBody is the body of POST /v1/rfqs. Optional fields are pointers
// so that an explicit zero can be told from an absent field.
type createRFQBody struct {
	Customer   string                     `json:"customer"`
	From       string                     `json:"from"`
	To         string                     `json:"to"`
	Passengers *int                       `json:"passengers"`
	PickupAt   *string                    `json:"pickup_at"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	Timeout    *string                    `json:"timeout"`
	NotifyURL  *string                    `json:"notify_url"`
}

// request checks the body at the edge, required fields first, and returns
// the request it makes for customer, the caller's ("" if the body names
// it).
func (b createRFQBody) request(customer string) (rydes.RFQRequest, error) {
	name, err := requestCustomer(b.Customer, customer)
	if err != nil {
		return rydes.RFQRequest{}, err
	}
	req := rydes.RFQRequest{Customer: name, From: b.From, To: b.To}
	if err := req.Validate(edgeLimits); err != nil {
		return rydes.RFQRequest{}, err
	}
	if b.Passengers != nil {
		if *b.Passengers < 1 || *b.Passengers > rydes.MaxPassengers {
			return rydes.RFQRequest{}, rydes.FieldErrorf("passengers", "must be between 1 and %d", rydes.MaxPassengers)
		}
		req.Passengers = *b.Passengers
	}
	if b.PickupAt != nil {
		t, err := parsePickupAt(*b.PickupAt)
		if err != nil {
			return rydes.RFQRequest{}, err
		}
		req.PickupAt = t
	}
	if b.Attributes != nil {
		req.Attributes = make(map[string]string, len(b.Attributes))
		keys := make([]string, 0, len(b.Attributes))
		for k := range b.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys) // name the same offending key every time
		for _, k := range keys {
			v, err := stringValue("attributes."+k, b.Attributes[k])
			if err != nil {
				return rydes.RFQRequest{}, err
			}
			req.Attributes[k] = v
		}
	}
	if b.Timeout != nil {
		d, err := parseTimeout(*b.Timeout)
		if err != nil {
			return rydes.RFQRequest{}, err
		}
		req.Timeout = d
	}
	if b.NotifyURL != nil {
		req.NotifyURL = *b.NotifyURL
		if req.NotifyURL == "" {
			return rydes.RFQRequest{}, rydes.FieldErrorf("notify_url", "must be an absolute http or https URL; leave it out for none")
		}
	}
	if err := req.Validate(edgeLimits); err != nil {
		return rydes.RFQRequest{}, err
	}
	return req, nil
}

// requestCustomer returns the customer a request body is made for: the
// body's customer when the caller acts for no customer in particular
// (caller ""), else the caller, which the body may name but not contradict.
func requestCustomer(body, caller string) (string, error) {
	if caller == "" {
		return body, nil
	}
	if body != "" && strings.TrimSpace(body) != caller {
		return "", &rydes.Error{Code: rydes.EFORBIDDEN, Field: "customer",
			Message: "must be the customer of the API key, or left out"}
	}
	return caller, nil
}

// handleCreateRFQ serves POST /v1/rfqs: 201 with the RFQ and its Location;
// the RFQ's notify_secret, if it has a notify_url, is shown only here. The
// notify_url must pass check, if not nil.
func handleCreateRFQ(logger *slog.Logger, svc Service, maxBody int64, check func(context.Context, string) error) customerHandler {
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		var body createRFQBody
		if err := decodeJSON(w, r, maxBody, &body); err != nil {
			writeError(w, r, logger, err)
			return
		}
		req, err := body.request(customer)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if req.NotifyURL != "" {
			if err := checkURL(r.Context(), check, "notify_url", req.NotifyURL); err != nil {
				writeError(w, r, logger, err)
				return
			}
		}
		rfq, err := svc.CreateRFQ(r.Context(), req)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("create rfq: %w", err))
			return
		}
		w.Header().Set("Location", "/v1/rfqs/"+rfq.ID)
		if rfq.NotifySecret != "" {
			w.Header().Set("Cache-Control", "no-store")
		}
		writeJSON(w, r, logger, http.StatusCreated, wireRFQ(rfq))
	}
}

// handleGetRFQ serves GET /v1/rfqs/{id}: the RFQ with its version as a
// strong ETag, 304 while If-None-Match matches it, and with ?wait= a long
// poll: while the client's version is current (or, without If-None-Match,
// while the RFQ is open), the request is held until the RFQ changes or the
// wait ends. A final RFQ never changes, so never waits.
func handleGetRFQ(logger *slog.Logger, svc Service, watcher Watcher, maxWait time.Duration) customerHandler {
	// The bodies of final RFQs, which never change, by ETag (id and
	// version): a GET of one is then a copy, not an encoding.
	finals := expirable.NewLRU[string, []byte](finalBodies, nil, finalBodiesTTL)
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		wait, err := parseWait(r.URL.Query(), maxWait)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		inm := r.Header.Values("If-None-Match")
		conditional := len(inm) > 0
		if v, ok := svc.(versioner); ok && conditional && wait == 0 {
			// A poll that has the current version gets its 304 from the
			// version alone; anything else (an error too) takes the
			// full path below.
			if seq, err := v.RFQVersion(r.Context(), id, customer); err == nil {
				if etag := rfqETagOf(id, seq); etagMatches(inm, etag) {
					w.Header().Set("ETag", etag)
					w.Header().Set("Cache-Control", "no-cache")
					w.WriteHeader(http.StatusNotModified)
					return
				}
			}
		}
		rfq, err := svc.GetRFQ(r.Context(), id, customer)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
			return
		}
		if wait > 0 && watcher != nil && !rfq.Status.Final() && (!conditional || etagMatches(inm, rfqETag(rfq))) {
			if err := waitForChange(w, r, logger, watcher, rfq, wait); err != nil {
				writeError(w, r, logger, fmt.Errorf("watch rfq %s: %w", id, err))
				return
			}
			if r.Context().Err() != nil {
				return // the client went away; nobody reads an answer
			}
			// Read again whatever ended the wait: the event says that the
			// RFQ changed, not what it is now.
			if rfq, err = svc.GetRFQ(r.Context(), id, customer); err != nil {
				writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
				return
			}
		}
		etag := rfqETag(rfq)
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "no-cache")
		if conditional && etagMatches(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if !rfq.Status.Final() {
			writeJSON(w, r, logger, http.StatusOK, wireRFQ(rfq))
			return
		}
		body, ok := finals.Get(etag)
		if !ok {
			if body, err = json.Marshal(wireRFQ(rfq)); err != nil {
				writeError(w, r, logger, fmt.Errorf("encode rfq %s: %w", id, err))
				return
			}
			finals.Add(etag, body)
		}
		writeJSONBytes(w, r, logger, http.StatusOK, body)
	}
}

// The cache of final RFQs' bodies: as many as the engine keeps final RFQs
// in memory, for as long.
const (
	finalBodies    = 4096
	finalBodiesTTL = time.Minute
)

// versioner is implemented by a Service that can tell an RFQ's version
// (the seq in its ETag) without reading it whole (the engine can).
type versioner interface {
	RFQVersion(ctx context.Context, id, customer string) (int64, error)
}

// waitForChange holds the request until the RFQ gets an event after its
// current one, the watch ends, the wait ends or the client goes away. It
// lifts the server's read and write deadlines, which may be shorter than
// the wait.
func waitForChange(w http.ResponseWriter, r *http.Request, logger *slog.Logger, watcher Watcher, rfq rydes.RFQ, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	watch, err := watcher.WatchRFQ(ctx, rfq.ID, rfq.Seq)
	if err != nil {
		return err
	}
	defer watch.Close()
	liftDeadlines(w, r, logger)
	for {
		select {
		case <-watch.Ready():
			events, err := watch.Next(ctx)
			if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				logger.DebugContext(ctx, "long poll: watch ended", "rfq", rfq.ID, "err", err)
			}
			if len(events) > 0 || err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// handleCancelRFQ serves DELETE /v1/rfqs/{id}: 200 with the cancelled RFQ,
// 409 if it was already final.
func handleCancelRFQ(logger *slog.Logger, svc Service) customerHandler {
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if err := requireNoBody(r); err != nil {
			writeError(w, r, logger, err)
			return
		}
		rfq, err := svc.CancelRFQ(r.Context(), id, customer)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("cancel rfq %s: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, wireRFQ(rfq))
	}
}

// handleListNotifications serves GET /v1/rfqs/{id}/notifications: the
// attempts to deliver the RFQ's final state to its notify_url.
func handleListNotifications(logger *slog.Logger, svc Service, notifications Notifications) customerHandler {
	type notificationList struct {
		Notifications []rydes.Notification `json:"notifications"`
	}
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if notifications == nil {
			writeError(w, r, logger, unavailable("the notification log is not available on this server"))
			return
		}
		if _, err := svc.GetRFQ(r.Context(), id, customer); err != nil {
			writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
			return
		}
		ns, err := notifications.ListNotifications(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list notifications of rfq %s: %w", id, err))
			return
		}
		if ns == nil {
			ns = []rydes.Notification{}
		}
		writeJSON(w, r, logger, http.StatusOK, notificationList{Notifications: ns})
	}
}

// wireRFQ returns rfq as the API promises it: roster and quotes as arrays,
// never null, and quotes best first. It does not modify rfq.
func wireRFQ(rfq rydes.RFQ) rydes.RFQ {
	if rfq.Providers == nil {
		rfq.Providers = []rydes.RosterEntry{}
	}
	rfq.Quotes = slices.Clone(rfq.Quotes)
	if rfq.Quotes == nil {
		rfq.Quotes = []rydes.Quote{}
	}
	rydes.SortQuotes(rfq.Quotes)
	return rfq
}
