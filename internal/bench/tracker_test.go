package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ev(id string, seq int64, typ rydes.EventType, provider string) rydes.Event {
	return rydes.Event{RFQID: id, Seq: seq, Type: typ, Provider: provider}
}

func TestTrackerRecordsLatencies(t *testing.T) {
	tr := newTracker()
	tr.setWindow(at(0), at(1000))
	done := tr.createdRFQ("r1", at(10), true)
	tr.answered("r1", "p1", at(20))
	tr.event(ev("r1", 2, rydes.EventQuote, "p1"), at(25))
	tr.pushed(ev("r1", 2, rydes.EventQuote, "p1"), at(27), at(15))
	tr.event(ev("r1", 3, rydes.EventComplete, ""), at(30))
	select {
	case <-done:
	default:
		t.Fatal("the request is final, its channel must be closed")
	}
	tr.pushed(ev("r1", 3, rydes.EventComplete, ""), at(34), at(15))

	require.EqualValues(t, 1, tr.created.Load())
	require.EqualValues(t, 1, tr.completed.Load())
	require.EqualValues(t, 1, tr.stagedN.Load())
	require.Zero(t, tr.inflight.Load())
	require.InDelta(t, 20, tr.createComplete.Percentiles().P50, 0.1)
	require.InDelta(t, 5, tr.answerStaged.Percentiles().P50, 0.1)
	sse := tr.stagedSSE.Percentiles()
	require.EqualValues(t, 2, sse.Count)
	require.InDelta(t, 2, sse.P50, 0.1)
	require.InDelta(t, 4, sse.Max, 0.1)
	require.Empty(t, tr.rfqs)
	require.Empty(t, tr.sse)
	require.Empty(t, tr.answers)
}

func TestTrackerFinalBeforeCreateReturns(t *testing.T) {
	tr := newTracker()
	tr.setWindow(at(0), at(1000))
	tr.event(ev("r1", 2, rydes.EventComplete, ""), at(50))
	done := tr.createdRFQ("r1", at(10), false)
	<-done // closed already
	require.InDelta(t, 40, tr.createComplete.Percentiles().P50, 0.1)
	require.Zero(t, tr.inflight.Load())
	require.Empty(t, tr.rfqs)
}

func TestTrackerExpiredAndWindow(t *testing.T) {
	tr := newTracker()
	tr.setWindow(at(100), at(200))
	tr.createdRFQ("before", at(50), false) // started in the warmup
	tr.createdRFQ("gone", at(150), false)
	tr.event(ev("before", 2, rydes.EventComplete, ""), at(150))
	tr.event(ev("gone", 2, rydes.EventExpired, ""), at(160))
	require.EqualValues(t, 1, tr.created.Load(), "only requests started in the window count as created")
	require.EqualValues(t, 1, tr.completed.Load(), "a completion seen in the window counts")
	require.Zero(t, tr.createComplete.Percentiles().Count, "its latency does not: it started in the warmup")
	require.EqualValues(t, 1, tr.expired.Load())
}

func TestTrackerSSEReplayIsNotPush(t *testing.T) {
	tr := newTracker()
	tr.setWindow(at(0), at(1000))
	tr.createdRFQ("r1", at(0), true)
	// Staged before the stream opened at 20: a replay, not a push.
	tr.event(ev("r1", 2, rydes.EventQuote, "p1"), at(10))
	tr.pushed(ev("r1", 2, rydes.EventQuote, "p1"), at(30), at(20))
	require.Zero(t, tr.stagedSSE.Percentiles().Count)
}

func TestSample(t *testing.T) {
	l := &load{cfg: Config{SSESample: 0.25}}
	n := 0
	for range 100 {
		if l.sample() {
			n++
		}
	}
	require.Equal(t, 25, n)
	l = &load{cfg: Config{SSESample: 0}}
	require.False(t, l.sample())
}

// decodeObserved reads what the tracker needs of both kinds of message of
// events, and refuses what is not events.
func TestDecodeObserved(t *testing.T) {
	const rfq = "019ac1f2-5e3a-7c41-9a6b-28353fa30e42"
	evs, err := decodeObserved([]byte(`[{"rfq_id":"` + rfq + `","seq":2,"type":"quote","provider":"p1","at":"2026-11-26T10:00:00Z","quote":{"provider":"p1"}},` +
		`{"rfq_id":"` + rfq + `","seq":3,"type":"complete","status":"complete"}]`))
	require.NoError(t, err)
	require.Equal(t, []rydes.Event{
		{RFQID: rfq, Seq: 2, Type: rydes.EventQuote, Provider: "p1"},
		{RFQID: rfq, Seq: 3, Type: rydes.EventComplete},
	}, evs)
	evs, err = decodeObserved([]byte(`{"rfq_id":"` + rfq + `","seq":1,"type":"created"}`))
	require.NoError(t, err)
	require.Equal(t, []rydes.Event{{RFQID: rfq, Seq: 1, Type: rydes.EventCreated}}, evs)
	for _, bad := range []string{``, `[]`, `{"type":"io.nats.jetstream.api.v1.stream_info_response"}`,
		`[{"rfq_id":"` + rfq + `","seq":1,"type":"created"},{"rfq_id":"` + rfq + `","seq":3,"type":"quote"}]`} {
		_, err := decodeObserved([]byte(bad))
		require.Error(t, err, bad)
	}
}
