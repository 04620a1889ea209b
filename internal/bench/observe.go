package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// eventsSubject matches every RFQ event rydes publishes (bus.EventSubject).
const eventsSubject = "rydes.events.>"

// observeEvents subscribes nc, which must be allowed to, to every RFQ
// event and hands each to tr as staged when it arrives. rydes publishes an
// event after the transaction that wrote it committed, so its arrival is
// when the bench can know the change is durable. Unsubscribe when done.
func observeEvents(nc *nats.Conn, tr *tracker, badEvents func()) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(eventsSubject, func(m *nats.Msg) {
		at := time.Now()
		events, err := decodeObserved(m.Data)
		if err != nil {
			badEvents()
			return
		}
		for _, ev := range events {
			tr.event(ev, at)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", eventsSubject, err)
	}
	// Never drop an event for a slow consumer: the bench would wait for a
	// completion that it missed.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("subscribe to %s: pending limits: %w", eventsSubject, err)
	}
	if err := nc.Flush(); err != nil {
		return nil, fmt.Errorf("subscribe to %s: flush: %w", eventsSubject, err)
	}
	return sub, nil
}

// observedEvent is what the tracker reads of an event.
type observedEvent struct {
	RFQID    string          `json:"rfq_id"`
	Seq      int64           `json:"seq"`
	Type     rydes.EventType `json:"type"`
	Provider string          `json:"provider"`
}

// decodeObserved decodes a message of events (as store.DecodeEvents
// does) into the fields the tracker reads: the bench shares the CPU with
// an in-process rydes, and decoding each event whole (its time, its quote)
// took half as long again.
func decodeObserved(data []byte) ([]rydes.Event, error) {
	obs, err := store.UnmarshalEvents[observedEvent](data)
	if err != nil {
		return nil, err
	}
	events := make([]rydes.Event, len(obs))
	for i, o := range obs {
		events[i] = rydes.Event{RFQID: o.RFQID, Seq: o.Seq, Type: o.Type, Provider: o.Provider}
	}
	if err := store.CheckEvents(events); err != nil {
		return nil, err
	}
	return events, nil
}

// watchSSE follows the event stream of request id (GET
// /v1/rfqs/{id}/events) until its final event, calling onEvent with each
// event, when it arrived and when the stream opened (its response headers
// came). It reads the stream itself, rather than with client.Events, to
// know when the stream opened: an event published after that is pushed
// live, one before it is a replay.
func watchSSE(ctx context.Context, hc *http.Client, base, key, id string, onEvent func(ev rydes.Event, at, opened time.Time)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/rfqs/"+id+"/events", nil)
	if err != nil {
		return fmt.Errorf("events of %s: %w", id, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("events of %s: %w", id, err)
	}
	defer resp.Body.Close()
	opened := time.Now()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events of %s: status %s", id, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue // id:, event:, blank lines and heartbeats
		}
		at := time.Now()
		var ev rydes.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("events of %s: decode: %w", id, err)
		}
		onEvent(ev, at, opened)
		if ev.Type.Final() {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("events of %s: %w", id, err)
	}
	return fmt.Errorf("events of %s: the stream ended before the final event", id)
}
