package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// passwords is a bus.ProviderAuthenticator over a map of user → password.
type passwords struct {
	mu sync.Mutex
	m  map[string]string
}

func (p *passwords) CheckNATSPassword(_ context.Context, user, password string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want, ok := p.m[user]
	return ok && want == password, nil
}

func (p *passwords) set(user, password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[user] = password
}

// broker is rydes's side of an authenticating embedded server listening on
// TCP: the server, rydes's own connection and bus, and an answer service
// that keeps what it receives in the shared state.
type broker struct {
	emb  *bus.Embedded
	nc   *nats.Conn
	bus  *bus.Bus
	once sync.Once
	st   *rydesState
	// stopServe stops the answer service and waits for it.
	stopServe func()
}

// rydesState is what outlives a broker's restart: the outbox ids and the
// answers staged, by RFQ.
type rydesState struct {
	ids     atomic.Int64
	mu      sync.Mutex
	answers map[string]rydes.Answer
	errs    []string
}

func newState() *rydesState { return &rydesState{answers: map[string]rydes.Answer{}} }

// stage keeps in's answer as rydes's store would: a second, identical
// answer to an RFQ is a duplicate; a different one is an error the test
// reports.
func (st *rydesState) stage(in bus.Inbound) rydes.AnswerReceipt {
	st.mu.Lock()
	defer st.mu.Unlock()
	if in.Err != nil {
		st.errs = append(st.errs, in.Err.Error())
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectInvalid, Message: in.Err.Error()}
	}
	a := in.Answer
	a.ReceivedAt = time.Time{}
	if prev, ok := st.answers[a.RFQID]; ok {
		if !reflect.DeepEqual(prev, a) {
			st.errs = append(st.errs, fmt.Sprintf("two different answers to %s: %+v and %+v", a.RFQID, prev, a))
		}
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeDuplicate, RFQStatus: rydes.StatusOpen}
	}
	st.answers[a.RFQID] = a
	return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
}

// startBroker starts a broker on dir, listening on listen, with an ack
// wait of 1s so that what a restart loses is redelivered soon.
func startBroker(t *testing.T, dir, listen string, auth bus.ProviderAuthenticator, st *rydesState) *broker {
	t.Helper()
	ctx := rydestest.Context(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: dir, Listen: listen, Providers: auth, Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	nc, err := emb.Connect()
	require.NoError(t, err)
	b, err := bus.New(ctx, nc, bus.Config{AckWait: time.Second, Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(served)
		err := b.ServeAnswers(sctx, func(_ context.Context, in bus.Inbound) rydes.AnswerReceipt { return st.stage(in) },
			bus.ServeOptions{Ready: func() { close(ready) }})
		if err != nil {
			t.Errorf("serve answers: %v", err)
		}
	}()
	select {
	case <-ready:
	case <-served:
	}
	br := &broker{emb: emb, nc: nc, bus: b, st: st, stopServe: func() { cancel(); <-served }}
	t.Cleanup(br.shutdown)
	return br
}

// shutdown stops the broker; stopping it again does nothing.
func (br *broker) shutdown() {
	br.once.Do(func() {
		br.stopServe()
		br.bus.Close()
		br.nc.Close()
		br.emb.Shutdown()
	})
}

// dispatch scatters a request to provider the way rydes does.
func (br *broker) dispatch(t *testing.T, provider, from string) rydes.ProviderRequest {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	req := rydes.ProviderRequest{RFQID: rydes.NewID(), From: from, To: "Rainbow", CreatedAt: now, Deadline: now.Add(time.Hour)}
	msg := store.OutboxMessage{ID: br.st.ids.Add(1), Kind: store.OutboxDispatch, CreatedAt: now, Dispatch: &store.Dispatch{Providers: []string{provider}, Request: req}}
	_, err := br.bus.Publish(rydestest.Context(t), []store.OutboxMessage{msg})
	require.NoError(t, err)
	return req
}

// answers returns the answers staged so far, by RFQ, failing on two
// different answers to one RFQ or an answer that did not decode.
func (br *broker) answers(t *testing.T) map[string]rydes.Answer {
	t.Helper()
	br.st.mu.Lock()
	defer br.st.mu.Unlock()
	require.Empty(t, br.st.errs)
	return maps.Clone(br.st.answers)
}

// waitQueueEmpty waits until provider settled every request: none is left
// on its subject of the dispatch stream (a work queue, which drops what was
// acked) nor pending on its queue. The stream's count is exact as soon as a
// publish returns; the queue's counts may lag a message just stored.
func (br *broker) waitQueueEmpty(t *testing.T, provider string) {
	t.Helper()
	ctx := rydestest.Context(t)
	rydestest.WaitFor(t, provider+"'s queue to be empty", func() bool {
		s, err := br.bus.JetStream().Stream(ctx, bus.DispatchStream)
		require.NoError(t, err)
		for _, f := range bus.DispatchFilters(provider) {
			info, err := s.Info(ctx, jetstream.WithSubjectFilter(f))
			require.NoError(t, err)
			if len(info.State.Subjects) != 0 {
				return false
			}
		}
		qi, err := br.bus.QueueInfo(ctx, provider)
		require.NoError(t, err)
		return qi.Pending == 0 && qi.InFlight == 0
	})
}

// asyncErrors returns an option collecting a connection's asynchronous
// errors, such as permission violations, and the channel they go to.
func asyncErrors() (nats.Option, chan error) {
	errs := make(chan error, 100)
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}), errs
}

// runInBackground runs p until stop is called, which returns Run's error;
// done is closed when Run returns.
func runInBackground(t *testing.T, p *Provider, h Handler) (stop func() error, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var err error
	go func() {
		defer close(finished)
		err = p.Run(ctx, h)
	}()
	var once sync.Once
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case <-finished:
			case <-time.After(rydestest.WaitTimeout):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, finished
}

func TestConnectValidates(t *testing.T) {
	_, err := Connect("nats://127.0.0.1:1", "p.1", "pw")
	require.Error(t, err)
	_, err = Connect("nats://127.0.0.1:1", "p1", "")
	require.Error(t, err)
}

func TestConnectRefused(t *testing.T) {
	auth := &passwords{m: map[string]string{"p1": "pw"}}
	br := startBroker(t, t.TempDir(), "127.0.0.1:0", auth, newState())
	for _, tc := range []struct{ user, password string }{{"p1", "wrong"}, {"p2", "pw"}} {
		_, err := Connect(br.emb.ClientURL(), tc.user, tc.password)
		require.ErrorIs(t, err, nats.ErrAuthorization)
		require.ErrorContains(t, err, "refused the credentials")
	}
}

// TestRunWithProviderCredentials runs the SDK on a connection with the
// provider's credentials and permissions: every path (answer, retry after
// an error, drop an unreadable request, silence) works without a single
// permission violation.
func TestRunWithProviderCredentials(t *testing.T) {
	ctx := rydestest.Context(t)
	auth := &passwords{m: map[string]string{"p1": "pw"}}
	br := startBroker(t, t.TempDir(), "127.0.0.1:0", auth, newState())
	require.NoError(t, br.bus.EnsureProviderQueue(ctx, "p1"))
	errOpt, errs := asyncErrors()
	nc, err := Connect(br.emb.ClientURL(), "p1", "pw", errOpt)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.Equal(t, "_INBOX_p1", nc.Opts.InboxPrefix)
	require.Equal(t, "rydes-provider-p1", nc.Opts.Name)
	p, err := New(Config{Conn: nc, ID: "p1", RetryDelay: 10 * time.Millisecond, Logger: rydestest.Logger(t)})
	require.NoError(t, err)

	var failed atomic.Bool
	stop, _ := runInBackground(t, p, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		switch req.From {
		case "flaky":
			if !failed.Swap(true) {
				return Reply{}, errors.New("pricing service down")
			}
			return Decline("busy"), nil
		case "silent":
			return Silent(), nil
		default:
			return Quote(eur("45.50"), WithETA(5*time.Minute)), nil
		}
	})
	quoted := br.dispatch(t, "p1", "quote")
	declined := br.dispatch(t, "p1", "flaky")
	br.dispatch(t, "p1", "silent")
	// An unreadable request is terminated.
	_, err = br.bus.JetStream().Publish(ctx, bus.DispatchSubject("p1", rydes.NewID()), []byte("not json"))
	require.NoError(t, err)

	// The queue's counts lag the publication a moment: wait for the
	// answers first.
	var got map[string]rydes.Answer
	rydestest.WaitFor(t, "two answers", func() bool {
		got = br.answers(t)
		return len(got) == 2
	})
	br.waitQueueEmpty(t, "p1")
	require.Len(t, br.answers(t), 2)
	require.Equal(t, rydes.AnswerQuote, got[quoted.RFQID].Kind)
	require.Equal(t, "p1", got[quoted.RFQID].Provider)
	require.Equal(t, rydes.AnswerDecline, got[declined.RFQID].Kind)
	require.True(t, failed.Load())
	require.NoError(t, stop())

	require.NoError(t, nc.Flush())
	select {
	case err := <-errs:
		t.Fatalf("asynchronous error: %v", err)
	default:
	}
}

// TestRunAcrossBrokerRestart stops the broker while the provider holds
// requests, answers them while it is down, starts it again on the same
// store and port and dispatches more: the same Run answers every request,
// each exactly once, and nothing is lost. With the reconnect buffer, the
// answers and acks sent while the broker was down go out once it is back;
// without it, they fail and the requests are delivered again.
func TestRunAcrossBrokerRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{"buffered while down", nil},
		{"failing while down", []nats.Option{nats.ReconnectBufSize(-1)}},
	} {
		t.Run(tc.name, func(t *testing.T) { testRunAcrossBrokerRestart(t, tc.opts...) })
	}
}

func testRunAcrossBrokerRestart(t *testing.T, opts ...nats.Option) {
	ctx := rydestest.Context(t)
	dir := t.TempDir()
	ids := newState()
	auth := &passwords{m: map[string]string{"p1": "pw"}}
	br := startBroker(t, dir, "127.0.0.1:0", auth, ids)
	url := br.emb.ClientURL()
	require.NoError(t, br.bus.EnsureProviderQueue(ctx, "p1"))

	disconnected := make(chan struct{}, 10)
	reconnected := make(chan struct{}, 10)
	opts = append(opts,
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }),
	)
	nc, err := Connect(url, "p1", "pw", opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	p, err := New(Config{Conn: nc, ID: "p1", RetryDelay: 10 * time.Millisecond, Logger: rydestest.Logger(t)})
	require.NoError(t, err)

	held := make(chan string, 10)
	release := make(chan struct{})
	var calls atomic.Int32
	stop, done := runInBackground(t, p, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		calls.Add(1)
		if req.From == "held" {
			select {
			case held <- req.RFQID:
			default: // a redelivery
			}
			<-release
		}
		return Quote(eur("7")), nil
	})

	var want []string
	for range 3 {
		want = append(want, br.dispatch(t, "p1", "before").RFQID)
	}
	br.waitQueueEmpty(t, "p1")
	require.Len(t, br.answers(t), 3)

	// Two requests are being handled when the broker stops; their answers
	// are sent while it is down.
	for range 2 {
		want = append(want, br.dispatch(t, "p1", "held").RFQID)
	}
	for range 2 {
		select {
		case <-held:
		case <-ctx.Done():
			t.Fatal("the held requests were not delivered")
		}
	}
	br.shutdown()
	select {
	case <-disconnected:
	case <-ctx.Done():
		t.Fatal("the provider did not notice the broker stopped")
	}
	close(release)

	br = startBroker(t, dir, strings.TrimPrefix(url, "nats://"), auth, ids)
	require.Equal(t, url, br.emb.ClientURL())
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("the provider did not reconnect")
	}
	for range 3 {
		want = append(want, br.dispatch(t, "p1", "after").RFQID)
	}

	var got map[string]rydes.Answer
	rydestest.WaitFor(t, "every request to be answered", func() bool {
		got = br.answers(t)
		return len(got) == len(want)
	})
	for _, id := range want {
		require.Contains(t, got, id)
		require.Equal(t, "7", got[id].Price.Amount)
	}
	br.waitQueueEmpty(t, "p1")
	require.GreaterOrEqual(t, int(calls.Load()), len(want))
	t.Logf("%d requests, %d handler calls", len(want), calls.Load())
	select {
	case <-done:
		t.Fatalf("Run returned during the restart: %v", stop())
	default:
	}
	require.NoError(t, stop())
}

// TestRunStopsWhenCredentialsRevoked rotates the provider's password and
// closes its connections: the connection cannot come back with the old
// password, and Run returns an error saying so.
func TestRunStopsWhenCredentialsRevoked(t *testing.T) {
	ctx := rydestest.Context(t)
	auth := &passwords{m: map[string]string{"p1": "pw"}}
	br := startBroker(t, t.TempDir(), "127.0.0.1:0", auth, newState())
	require.NoError(t, br.bus.EnsureProviderQueue(ctx, "p1"))
	nc, err := Connect(br.emb.ClientURL(), "p1", "pw", nats.ReconnectWait(10*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	p, err := New(Config{Conn: nc, ID: "p1", Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	stop, done := runInBackground(t, p, func(context.Context, rydes.ProviderRequest) (Reply, error) {
		return Quote(eur("1")), nil
	})
	br.dispatch(t, "p1", "x")
	br.waitQueueEmpty(t, "p1")

	auth.set("p1", "pw2")
	require.Equal(t, 1, br.emb.DisconnectUser("p1"))
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Run did not return after the provider's credentials were revoked")
	}
	err = stop()
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	require.True(t, nc.IsClosed())
}

// TestRunConsumesAgainWhenTheQueueComesBack deletes the provider's queue,
// which stops consuming, and creates it again before Run looks it up: Run
// carries on with the new queue.
func TestRunConsumesAgainWhenTheQueueComesBack(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	ctx := rydestest.Context(t)
	recreated := make(chan struct{})
	bb.p.testHookReattach = func() { <-recreated }
	stop := bb.run(t, func(context.Context, rydes.ProviderRequest) (Reply, error) {
		return Quote(eur("3")), nil
	})
	bb.dispatch(t, "x", time.Now().Add(time.Hour))
	bb.nextAnswer(t)
	bb.waitQueueEmpty(t)

	require.NoError(t, bb.bus.DeleteProviderQueue(ctx, "p1"))
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	close(recreated)
	req := bb.dispatch(t, "y", time.Now().Add(time.Hour))
	in := bb.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID)
	require.NoError(t, stop())
}

// A broker that loses the whole dispatch stream does not stop Run: it waits
// for rydes's reconciliation to create the stream, then the queue, again,
// and consumes from them.
func TestRunWaitsForALostStream(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	ctx := rydestest.Context(t)
	attempts := make(chan struct{})
	proceed := make(chan struct{})
	bb.p.testHookReattach = func() {
		attempts <- struct{}{}
		<-proceed
	}
	stop := bb.run(t, func(context.Context, rydes.ProviderRequest) (Reply, error) {
		return Quote(eur("4")), nil
	})
	bb.dispatch(t, "x", time.Now().Add(time.Hour))
	bb.nextAnswer(t)
	bb.waitQueueEmpty(t)

	require.NoError(t, bb.bus.JetStream().DeleteStream(ctx, bus.DispatchStream))
	<-attempts
	proceed <- struct{}{} // looks: the stream is missing
	<-attempts
	require.NoError(t, bb.bus.EnsureStreams(ctx))
	proceed <- struct{}{} // looks: the stream is back, its queue not yet
	<-attempts
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	close(proceed) // looks: the queue is back
	go func() {
		for range attempts { // no more lookups are expected; never block one
		}
	}()
	req := bb.dispatch(t, "y", time.Now().Add(time.Hour))
	in := bb.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID, "consuming again from the queue made anew")
	require.NoError(t, stop())
	close(attempts)
}
