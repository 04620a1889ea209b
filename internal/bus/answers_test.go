package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
)

func staged(context.Context, Inbound) rydes.AnswerReceipt {
	return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
}

func requestAnswer(t testing.TB, nc *nats.Conn, provider string, body []byte) rydes.AnswerReceipt {
	t.Helper()
	reply, err := nc.RequestWithContext(rydestest.Context(t), AnswerSubject(provider), body)
	require.NoError(t, err)
	var r rydes.AnswerReceipt
	require.NoError(t, json.Unmarshal(reply.Data, &r))
	return r
}

// The provider's answer reaches the handler as the subject's provider's,
// stamped with when it was received, and the provider gets the handler's
// receipt as the reply.
func TestServeAnswersRepliesWithTheReceipt(t *testing.T) {
	bb := setup(t, false)
	got := make(chan Inbound, 1)
	serveAnswers(t, bb.bus, func(ctx context.Context, in Inbound) rydes.AnswerReceipt {
		got <- in
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectLate, Message: "the deadline had passed"}
	}, ServeOptions{})
	before := time.Now().UTC().Truncate(time.Microsecond)
	r := requestAnswer(t, bb.nc, "p1", quoteBody(t, rfq1, "12.50"))
	require.Equal(t, rydes.AnswerReceipt{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectLate, Message: "the deadline had passed"}, r)
	in := <-got
	require.NoError(t, in.Err)
	require.Equal(t, "p1", in.Answer.Provider)
	require.Equal(t, rfq1, in.Answer.RFQID)
	require.Equal(t, "12.50", in.Answer.Price.Amount)
	require.False(t, in.Answer.ReceivedAt.Before(before), "received when it arrived")
	require.Equal(t, in.Answer.ReceivedAt, in.Answer.ReceivedAt.Truncate(time.Microsecond))
}

func TestServeAnswersDecodeFailureReachesHandler(t *testing.T) {
	bb := setup(t, false)
	got := make(chan Inbound, 2)
	serveAnswers(t, bb.bus, func(ctx context.Context, in Inbound) rydes.AnswerReceipt {
		got <- in
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectInvalid, Message: in.Err.Error()}
	}, ServeOptions{})
	for _, body := range []string{
		`{"rfq_id":"` + rfq1 + `","kind":"quote","price":{"amount":"-1","currency":"EUR"}}`,
		`not json`,
	} {
		r := requestAnswer(t, bb.nc, "p2", []byte(body))
		require.Equal(t, rydes.OutcomeRejected, r.Outcome)
		require.Equal(t, rydes.RejectInvalid, r.Reason)
		require.NotEmpty(t, r.Message)
		in := <-got
		require.Error(t, in.Err)
		require.Equal(t, "p2", in.Answer.Provider)
		require.Equal(t, []byte(body), in.Payload)
		require.False(t, in.Answer.ReceivedAt.IsZero())
	}
}

// Answers are handled concurrently, so that a group commit can take many:
// the handler here lets none go until eight are in it at once.
func TestServeAnswersHandlesConcurrently(t *testing.T) {
	bb := setup(t, false)
	const n = 8
	var mu sync.Mutex
	in := 0
	all := make(chan struct{})
	serveAnswers(t, bb.bus, func(ctx context.Context, _ Inbound) rydes.AnswerReceipt {
		mu.Lock()
		in++
		if in == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
		case <-ctx.Done():
			return rydes.AnswerReceipt{Error: ctx.Err().Error()}
		}
	}, ServeOptions{})
	var wg sync.WaitGroup
	receipts := make([]rydes.AnswerReceipt, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			reply, err := bb.nc.RequestWithContext(rydestest.Context(t), AnswerSubject(fmt.Sprintf("p%d", i)), quoteBody(t, rfq1, "1"))
			if err == nil {
				err = json.Unmarshal(reply.Data, &receipts[i])
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, rydes.OutcomeStaged, receipts[i].Outcome)
	}
}

// A stop lets the answers already received be handled and replied to.
func TestServeAnswersStopRepliesToWhatItReceived(t *testing.T) {
	bb := setup(t, false)
	entered := make(chan struct{})
	release := make(chan struct{})
	stop := serveAnswers(t, bb.bus, func(ctx context.Context, _ Inbound) rydes.AnswerReceipt {
		close(entered)
		<-release
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusComplete}
	}, ServeOptions{})
	replied := make(chan rydes.AnswerReceipt, 1)
	go func() {
		reply, err := bb.nc.RequestWithContext(rydestest.Context(t), AnswerSubject("p1"), quoteBody(t, rfq1, "1"))
		var r rydes.AnswerReceipt
		if err == nil {
			err = json.Unmarshal(reply.Data, &r)
		}
		if err != nil {
			r.Error = err.Error()
		}
		replied <- r
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	close(release)
	require.NoError(t, <-stopped)
	require.Equal(t, rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusComplete}, <-replied)

	// Stopped, nobody takes answers.
	_, err := bb.nc.RequestWithContext(rydestest.Context(t), AnswerSubject("p1"), quoteBody(t, rfq1, "1"))
	require.ErrorIs(t, err, nats.ErrNoResponders)
}

// An answer published without a reply subject is handled all the same.
func TestServeAnswersWithoutReplySubject(t *testing.T) {
	bb := setup(t, false)
	got := make(chan Inbound, 1)
	serveAnswers(t, bb.bus, func(_ context.Context, in Inbound) rydes.AnswerReceipt {
		got <- in
		return staged(nil, in)
	}, ServeOptions{})
	require.NoError(t, bb.nc.Publish(AnswerSubject("p3"), quoteBody(t, rfq1, "3")))
	select {
	case in := <-got:
		require.NoError(t, in.Err)
		require.Equal(t, "p3", in.Answer.Provider)
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("the answer was not handled")
	}
}

// A broker that still has the answers stream of an earlier rydes: the
// answer service moves the stream off the answer subjects, hands what it
// holds to the handler (received when the stream stored it), deletes it,
// and then answers the requests itself.
func TestServeAnswersDrainsTheRetiredStream(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: AnswersStream, Subjects: []string{AnswerSubjectPrefix + "*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	require.NoError(t, err)
	ack, err := bb.js.Publish(ctx, AnswerSubject("old"), quoteBody(t, rfq1, "7"))
	require.NoError(t, err)
	stored, err := bb.js.Stream(ctx, AnswersStream)
	require.NoError(t, err)
	raw, err := stored.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)

	got := make(chan Inbound, 2)
	serveAnswers(t, bb.bus, func(_ context.Context, in Inbound) rydes.AnswerReceipt {
		got <- in
		return staged(nil, in)
	}, ServeOptions{})
	in := <-got
	require.NoError(t, in.Err)
	require.Equal(t, "old", in.Answer.Provider)
	require.Equal(t, raw.Time.UTC().Truncate(time.Microsecond), in.Answer.ReceivedAt, "received when the stream stored it")

	r := requestAnswer(t, bb.nc, "new", quoteBody(t, rfq1, "8"))
	require.Equal(t, rydes.OutcomeStaged, r.Outcome, "the receipt is the answer service's, not a PubAck")
	require.Equal(t, "new", (<-got).Answer.Provider)
	_, err = bb.js.Stream(ctx, AnswersStream)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}

func TestServeAnswersStopsWithTheBus(t *testing.T) {
	bb := setup(t, false)
	done := make(chan error, 1)
	go func() { done <- bb.bus.ServeAnswers(rydestest.Context(t), staged, ServeOptions{}) }()
	// Once it answers, close the bus.
	rydestest.WaitFor(t, "the answer service", func() bool {
		_, err := bb.nc.Request(AnswerSubject("p1"), quoteBody(t, rfq1, "1"), time.Second)
		return err == nil
	})
	bb.bus.Close()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("ServeAnswers did not return after Close")
	}
	require.Error(t, bb.bus.ServeAnswers(rydestest.Context(t), staged, ServeOptions{}))
}

// BenchmarkAnswerRequests measures the answer service's transport alone:
// providers' requests and rydes's replies on loopback, with a handler that
// decides at once.
func BenchmarkAnswerRequests(b *testing.B) {
	bb := setup(b, false)
	serveAnswers(b, bb.bus, staged, ServeOptions{})
	pc, err := bb.emb.Connect()
	require.NoError(b, err)
	b.Cleanup(pc.Close)
	body := quoteBody(b, rfq1, "12.50")
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pc.Request(AnswerSubject("p1"), body, 10*time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}
