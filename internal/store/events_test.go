package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

func ev(rfq string, seq int64, typ rydes.EventType) rydes.Event {
	return rydes.Event{RFQID: rfq, Seq: seq, Type: typ, At: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Customer: "alice", Status: rydes.StatusOpen}
}

func TestCheckEvents(t *testing.T) {
	tests := []struct {
		name   string
		events []rydes.Event
		ok     bool
	}{
		{"one", []rydes.Event{ev("a", 1, rydes.EventCreated)}, true},
		{"consecutive, final last", []rydes.Event{ev("a", 4, rydes.EventQuote), ev("a", 5, rydes.EventDecline), ev("a", 6, rydes.EventComplete)}, true},
		{"none", nil, false},
		{"seq 0", []rydes.Event{ev("a", 0, rydes.EventCreated)}, false},
		{"two RFQs", []rydes.Event{ev("a", 2, rydes.EventQuote), ev("b", 3, rydes.EventQuote)}, false},
		{"a gap", []rydes.Event{ev("a", 2, rydes.EventQuote), ev("a", 4, rydes.EventQuote)}, false},
		{"out of order", []rydes.Event{ev("a", 3, rydes.EventQuote), ev("a", 2, rydes.EventQuote)}, false},
		{"a repeat", []rydes.Event{ev("a", 2, rydes.EventQuote), ev("a", 2, rydes.EventQuote)}, false},
		{"final not last", []rydes.Event{ev("a", 2, rydes.EventExpired), ev("a", 3, rydes.EventQuote)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := store.CheckEvents(tt.events)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestGroupEvents(t *testing.T) {
	a2, b1, a3, c1, b2 := ev("a", 2, rydes.EventQuote), ev("b", 1, rydes.EventCreated), ev("a", 3, rydes.EventComplete), ev("c", 1, rydes.EventCreated), ev("b", 2, rydes.EventQuote)
	require.Nil(t, store.GroupEvents(nil))
	require.Equal(t, [][]rydes.Event{{a2, a3}}, store.GroupEvents([]rydes.Event{a2, a3}))
	require.Equal(t, [][]rydes.Event{{a2, a3}, {b1, b2}, {c1}}, store.GroupEvents([]rydes.Event{a2, b1, a3, c1, b2}),
		"by RFQ, in the order of each RFQ's first, each in the order emitted")
}

func TestDecodeEvents(t *testing.T) {
	events := []rydes.Event{ev("a", 2, rydes.EventQuote), ev("a", 3, rydes.EventComplete)}
	array, err := json.Marshal(events)
	require.NoError(t, err)
	got, err := store.DecodeEvents(array)
	require.NoError(t, err)
	require.Equal(t, events, got)

	object, err := json.Marshal(events[0])
	require.NoError(t, err)
	got, err = store.DecodeEvents(append([]byte(" \n"), object...))
	require.NoError(t, err)
	require.Equal(t, events[:1], got, "one event as an object, as rydes wrote before it grouped events")

	for name, data := range map[string]string{
		"empty":         ``,
		"empty array":   `[]`,
		"not JSON":      `{"rfq_id":`,
		"not events":    `[1, 2]`,
		"no seq":        `{"rfq_id":"a","type":"quote"}`,
		"a gap":         `[{"rfq_id":"a","seq":1,"type":"created"},{"rfq_id":"a","seq":3,"type":"quote"}]`,
		"a JSON string": `"event"`,
	} {
		_, err := store.DecodeEvents([]byte(data))
		require.Error(t, err, name)
	}
}
