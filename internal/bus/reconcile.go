package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamState is what reconciliation needs to know of a stream: which
// incarnation of it the broker holds, how far its sequence got, and how
// many messages the server found lost (corrupt or missing files).
type StreamState struct {
	Name string `json:"name"`
	// Created is when this incarnation of the stream was created: a stream
	// deleted and created again, or rebuilt empty after losing its files,
	// has a new one.
	Created time.Time `json:"created"`
	// LastSeq is the sequence of the last message the stream stored. It
	// never goes down unless the broker lost acknowledged messages.
	LastSeq uint64 `json:"last_seq"`
	// Lost counts the messages the server reports lost.
	Lost int `json:"lost"`
	// Missing is set when the stream does not exist.
	Missing bool `json:"missing,omitempty"`
}

// streamInfoResponse is the part of JetStream's STREAM.INFO answer that
// StreamState needs. The Go client's StreamInfo leaves out "lost", so the
// API is asked directly.
type streamInfoResponse struct {
	Error *struct {
		Code    int    `json:"code"`
		ErrCode int    `json:"err_code"`
		Desc    string `json:"description"`
	} `json:"error"`
	Created time.Time `json:"created"`
	State   struct {
		LastSeq uint64 `json:"last_seq"`
		Lost    *struct {
			Msgs []uint64 `json:"msgs"`
		} `json:"lost"`
	} `json:"state"`
}

// jsErrStreamNotFound is JetStream's error code for a missing stream.
const jsErrStreamNotFound = 10059

// StreamState asks the broker for the state of the stream name.
func (b *Bus) StreamState(ctx context.Context, name string) (StreamState, error) {
	msg, err := b.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.INFO."+name, nil)
	if err != nil {
		return StreamState{}, fmt.Errorf("stream %s info: %w", name, err)
	}
	var r streamInfoResponse
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return StreamState{}, fmt.Errorf("stream %s info: decode: %w", name, err)
	}
	if r.Error != nil {
		if r.Error.ErrCode == jsErrStreamNotFound {
			return StreamState{Name: name, Missing: true}, nil
		}
		return StreamState{}, fmt.Errorf("stream %s info: %s (%d)", name, r.Error.Desc, r.Error.ErrCode)
	}
	st := StreamState{Name: name, Created: r.Created.UTC(), LastSeq: r.State.LastSeq}
	if r.State.Lost != nil {
		st.Lost = len(r.State.Lost.Msgs)
	}
	return st, nil
}

// EnsureStreams creates rydes's streams that are missing (a broker that
// lost them) and updates the others' configuration.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	for _, sc := range StreamConfigs(b.cfg) {
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// ackMarks keeps, per stream, the highest sequence a publication of this
// process was acknowledged with since the last TakeAckedSeq. A stream whose
// last sequence is below it lost acknowledged messages.
type ackMarks struct {
	mu   sync.Mutex
	high map[string]uint64
}

func (m *ackMarks) note(ack *jetstream.PubAck) {
	if ack == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.high == nil {
		m.high = map[string]uint64{}
	}
	if ack.Sequence > m.high[ack.Stream] {
		m.high[ack.Stream] = ack.Sequence
	}
}

// TakeAckedSeq returns the highest sequence the stream name acknowledged a
// Publish with since the last call (0 if none), and starts over.
func (b *Bus) TakeAckedSeq(name string) uint64 {
	b.acks.mu.Lock()
	defer b.acks.mu.Unlock()
	seq := b.acks.high[name]
	delete(b.acks.high, name)
	return seq
}
