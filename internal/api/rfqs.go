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
// wait ends. A final RFQ never changes, so never waits. authenticate is the
// customer routes' requireCustomer.
//
// A long poll's connection goroutine only waits, as an event stream's
// does: authentication, the reads and the answer run on fresh stacks (see
// onFreshStack).
func handleGetRFQ(logger *slog.Logger, svc Service, watcher Watcher, maxWait time.Duration, authenticate func(customerHandler) http.Handler) http.Handler {
	g := &rfqGetter{
		logger: logger, svc: svc, watcher: watcher, maxWait: maxWait,
		// The bodies of final RFQs, which never change, by ETag (id and
		// version): a GET of one is then a copy, not an encoding.
		finals: expirable.NewLRU[string, []byte](finalBodies, nil, finalBodiesTTL),
	}
	get := authenticate(func(w http.ResponseWriter, r *http.Request, customer string) {
		if p := g.start(w, r, customer); p != nil { // not without ?wait=
			p.hold()
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" || !r.URL.Query().Has("wait") {
			get.ServeHTTP(w, r)
			return
		}
		if p := authenticateOnFreshStack(w, r, authenticate, g.start); p != nil {
			p.hold()
		}
	})
}

// rfqGetter answers GET /v1/rfqs/{id}.
type rfqGetter struct {
	logger  *slog.Logger
	svc     Service
	watcher Watcher
	maxWait time.Duration
	finals  *expirable.LRU[string, []byte]
}

// start answers a GET of an RFQ, or, for a long poll that has to wait,
// starts watching the RFQ and returns the poll to wait on.
func (g *rfqGetter) start(w http.ResponseWriter, r *http.Request, customer string) *longPoll {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, g.logger, err)
		return nil
	}
	wait, err := parseWait(r.URL.Query(), g.maxWait)
	if err != nil {
		writeError(w, r, g.logger, err)
		return nil
	}
	inm := r.Header.Values("If-None-Match")
	conditional := len(inm) > 0
	if v, ok := g.svc.(versioner); ok && conditional && wait == 0 {
		// A poll that has the current version gets its 304 from the
		// version alone; anything else (an error too) takes the full path
		// below.
		if seq, err := v.RFQVersion(r.Context(), id, customer); err == nil {
			if etag := rfqETagOf(id, seq); etagMatches(inm, etag) {
				w.Header().Set("ETag", etag)
				w.Header().Set("Cache-Control", "no-cache")
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
		}
	}
	rfq, err := g.svc.GetRFQ(r.Context(), id, customer)
	if err != nil {
		writeError(w, r, g.logger, fmt.Errorf("get rfq %s: %w", id, err))
		return nil
	}
	if wait == 0 || g.watcher == nil || rfq.Status.Final() || (conditional && !etagMatches(inm, rfqETag(rfq))) {
		g.answer(w, r, rfq)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	watch, err := g.watcher.WatchRFQ(ctx, rfq.ID, rfq.Seq)
	if err != nil {
		cancel()
		writeError(w, r, g.logger, fmt.Errorf("watch rfq %s: %w", id, err))
		return nil
	}
	// The server's read and write deadlines may be shorter than the wait.
	liftDeadlines(w, r, g.logger)
	return &longPoll{g: g, w: w, r: r, ctx: ctx, cancel: cancel, watch: watch, id: id, customer: customer}
}

// answer writes the RFQ, or 304 if If-None-Match has its version.
func (g *rfqGetter) answer(w http.ResponseWriter, r *http.Request, rfq rydes.RFQ) {
	etag := rfqETag(rfq)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if !rfq.Status.Final() {
		writeJSON(w, r, g.logger, http.StatusOK, wireRFQ(rfq))
		return
	}
	body, ok := g.finals.Get(etag)
	if !ok {
		var err error
		if body, err = json.Marshal(wireRFQ(rfq)); err != nil {
			writeError(w, r, g.logger, fmt.Errorf("encode rfq %s: %w", rfq.ID, err))
			return
		}
		g.finals.Add(etag, body)
	}
	writeJSONBytes(w, r, g.logger, http.StatusOK, body)
}

// longPoll is a GET ?wait= held until its RFQ changes.
type longPoll struct {
	g            *rfqGetter
	w            http.ResponseWriter
	r            *http.Request
	ctx          context.Context // ends with the wait
	cancel       context.CancelFunc
	watch        Watch
	id, customer string
}

// hold waits for the RFQ to change, then answers; only waiting runs on
// the caller's goroutine.
func (p *longPoll) hold() {
	defer p.end() // if finish did not: a panic
	p.wait()
	onFreshStack(p.finish)
}

// wait holds until the RFQ gets an event after the client's version, the
// watch ends, the wait ends or the client goes away. The watch wakes this
// goroutine through Ready; what came is taken on a fresh stack.
func (p *longPoll) wait() {
	for {
		select {
		case <-p.watch.Ready():
			changed := false
			onFreshStack(func() { changed = p.changed() })
			if changed {
				return
			}
		case <-p.ctx.Done():
			return
		}
	}
}

// changed takes what the watch has ready, and reports whether the wait is
// over: an event came, or the watch ended.
func (p *longPoll) changed() bool {
	events, err := p.watch.Next(p.ctx)
	if err != nil && !errors.Is(err, io.EOF) && p.ctx.Err() == nil {
		p.g.logger.DebugContext(p.ctx, "long poll: watch ended", "rfq", p.id, "err", err)
	}
	return len(events) > 0 || err != nil
}

// end ends the watch and the wait; ending twice does nothing.
func (p *longPoll) end() {
	p.watch.Close()
	p.cancel()
}

// finish ends the watch and answers with the RFQ as it is now: the event
// says that it changed, not what it is.
func (p *longPoll) finish() {
	p.end()
	if p.r.Context().Err() != nil {
		return // the client went away; nobody reads an answer
	}
	rfq, err := p.g.svc.GetRFQ(p.r.Context(), p.id, p.customer)
	if err != nil {
		writeError(p.w, p.r, p.g.logger, fmt.Errorf("get rfq %s: %w", p.id, err))
		return
	}
	p.g.answer(p.w, p.r, rfq)
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
