package bus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/provider"
)

const rfq2 = "5d0c4c3e-7a8b-4f0e-9a51-1c0f3b7e2d11"

// openDispatch is dispatchMsg with a deadline an hour from now.
func openDispatch(id int64, rfqID, provider string) store.OutboxMessage {
	m := dispatchMsg(id, rfqID, provider)
	m.Dispatch.Request.Deadline = time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	return m
}

// fakeProviders is a ProviderAuthenticator over a map of user → password.
// A user in block makes the check wait until its channel is closed (after
// telling entered).
type fakeProviders struct {
	mu        sync.Mutex
	passwords map[string]string
	broken    map[string]bool
	block     map[string]chan struct{}
	entered   chan string
}

func newFakeProviders(passwords map[string]string) *fakeProviders {
	return &fakeProviders{passwords: passwords, broken: map[string]bool{}, block: map[string]chan struct{}{}, entered: make(chan string, 10)}
}

func (f *fakeProviders) CheckNATSPassword(ctx context.Context, user, password string) (bool, error) {
	f.mu.Lock()
	gate := f.block[user]
	broken := f.broken[user]
	f.mu.Unlock()
	if gate != nil {
		f.entered <- user
		select {
		case <-gate:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	if broken {
		return false, errors.New("store unavailable")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want, ok := f.passwords[user]
	return ok && want == password, nil
}

func (f *fakeProviders) set(user, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords[user] = password
}

// authBundle is a server that authenticates providers A and B, rydes's own
// connection and bus, and a request waiting in each provider's queue.
type authBundle struct {
	emb       *Embedded
	providers *fakeProviders
	nc        *nats.Conn
	bus       *Bus
	js        jetstream.JetStream
}

func setupAuth(t *testing.T) *authBundle {
	t.Helper()
	ctx := rydestest.Context(t)
	fp := newFakeProviders(map[string]string{"A": "pass-a", "B": "pass-b"})
	emb, err := StartEmbedded(ctx, EmbeddedConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Providers: fp, Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err, "rydes's own connection uses the internal user")
	t.Cleanup(nc.Close)
	b, err := New(ctx, nc, Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, b.EnsureProviderQueue(ctx, "A"))
	require.NoError(t, b.EnsureProviderQueue(ctx, "B"))
	_, err = b.Publish(ctx, []store.OutboxMessage{openDispatch(1, rfq1, "A"), openDispatch(2, rfq2, "B")})
	require.NoError(t, err)
	ab := &authBundle{emb: emb, providers: fp, nc: nc, bus: b, js: b.JetStream()}
	ab.waitQueue(t, "A", QueueInfo{Pending: 1})
	ab.waitQueue(t, "B", QueueInfo{Pending: 1})
	return ab
}

// waitQueue waits until provider's queue holds what want says (Oldest
// aside).
func (ab *authBundle) waitQueue(t *testing.T, provider string, want QueueInfo) {
	t.Helper()
	var got QueueInfo
	rydestest.WaitFor(t, "queue of "+provider, func() bool {
		var err error
		got, err = ab.bus.QueueInfo(rydestest.Context(t), provider)
		require.NoError(t, err)
		return got.Pending == want.Pending && got.InFlight == want.InFlight
	})
}

// provConn is a provider's connection, made by the SDK, that collects the
// server's asynchronous errors (permission violations).
type provConn struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func (ab *authBundle) connect(t *testing.T, user, password string, opts ...nats.Option) (*provConn, error) {
	t.Helper()
	pc := &provConn{errs: make(chan error, 100)}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case pc.errs <- err:
		default:
		}
	}))
	nc, err := provider.Connect(ab.emb.ClientURL(), user, password, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	pc.nc = nc
	pc.js, err = jetstream.New(nc)
	require.NoError(t, err)
	return pc, nil
}

// violation waits for the server to report a permission violation for what,
// such as `Publish to "x"` (a prefix of the subject will do).
func (pc *provConn) violation(t *testing.T, what string) {
	t.Helper()
	want := strings.ToLower("Permissions Violation for " + what)
	ctx := rydestest.Context(t)
	for {
		select {
		case err := <-pc.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(strings.ToLower(err.Error()), want) {
				return
			}
			t.Logf("another asynchronous error: %v", err)
		case <-ctx.Done():
			t.Fatalf("no permission violation for %s", what)
		}
	}
}

// refused runs op, waits for the server to refuse what, stops op and
// requires it to have failed: a refused request gets no answer.
func (pc *provConn) refused(t *testing.T, what string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	pc.violation(t, what)
	cancel()
	require.Error(t, <-done, "%s was refused, yet the operation succeeded", what)
}

// subscribeRefused subscribes to subject and requires the server to refuse
// it.
func (pc *provConn) subscribeRefused(t *testing.T, subject string) *nats.Subscription {
	t.Helper()
	sub, err := pc.nc.SubscribeSync(subject)
	require.NoError(t, err, "subscribing is refused asynchronously")
	require.NoError(t, pc.nc.Flush())
	pc.violation(t, `Subscription to "`+subject+`"`)
	return sub
}

// publishRefused publishes on subject and requires the server to refuse it.
func (pc *provConn) publishRefused(t *testing.T, subject string, data []byte) {
	t.Helper()
	require.NoError(t, pc.nc.Publish(subject, data))
	require.NoError(t, pc.nc.Flush())
	pc.violation(t, `Publish to "`+subject+`"`)
}

func (pc *provConn) noViolations(t *testing.T) {
	t.Helper()
	require.NoError(t, pc.nc.Flush())
	select {
	case err := <-pc.errs:
		t.Fatalf("unexpected asynchronous error: %v", err)
	default:
	}
}

func request(nc *nats.Conn, subject string, data []byte) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := nc.RequestWithContext(ctx, subject, data)
		return err
	}
}

func TestProviderPermissions(t *testing.T) {
	p := ProviderPermissions("A")
	require.Equal(t, []string{
		"$JS.API.CONSUMER.MSG.NEXT.RYDES_DISPATCH.provider-A",
		"$JS.API.CONSUMER.INFO.RYDES_DISPATCH.provider-A",
		"$JS.ACK.RYDES_DISPATCH.provider-A.>",
		"rydes.answers.A",
	}, p.Publish.Allow)
	require.Empty(t, p.Publish.Deny)
	require.Equal(t, []string{"_INBOX_A.>"}, p.Subscribe.Allow)
	require.Empty(t, p.Subscribe.Deny)
	require.Nil(t, p.Response, "a provider answers no requests")
	require.Equal(t, "_INBOX_A", ProviderInboxPrefix("A"))
	require.Equal(t, provider.InboxPrefix("A"), ProviderInboxPrefix("A"))
}

// TestProviderIsolation checks, with A's credentials, everything A must not
// be able to do to B's queue and answers or to rydes's streams, and that
// nothing changed.
func TestProviderIsolation(t *testing.T) {
	ab := setupAuth(t)
	ctx := rydestest.Context(t)
	a, err := ab.connect(t, "A", "pass-a")
	require.NoError(t, err)
	bQueue := DispatchStream + "." + ProviderQueue("B")

	t.Run("1 pull from B's queue", func(t *testing.T) {
		inbox := a.nc.NewInbox()
		sub, err := a.nc.SubscribeSync(inbox)
		require.NoError(t, err)
		require.NoError(t, a.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+bQueue, inbox, []byte(`{"batch":1,"expires":1000000000}`)))
		require.NoError(t, a.nc.Flush())
		a.violation(t, `Publish to "$JS.API.CONSUMER.MSG.NEXT.`+bQueue+`"`)
		msgs, _, err := sub.Pending()
		require.NoError(t, err)
		require.Zero(t, msgs)
		ab.waitQueue(t, "B", QueueInfo{Pending: 1})
	})
	t.Run("2 read B's queue info", func(t *testing.T) {
		a.refused(t, `Publish to "$JS.API.CONSUMER.INFO.`+bQueue+`"`, func(ctx context.Context) error {
			_, err := a.js.Consumer(ctx, DispatchStream, ProviderQueue("B"))
			return err
		})
	})
	t.Run("3 subscribe to dispatch subjects", func(t *testing.T) {
		a.subscribeRefused(t, "rydes.dispatch.>")
		a.subscribeRefused(t, DispatchSubject("B", rydes.NewID()))
		a.subscribeRefused(t, DispatchFilters("A")[0])
	})
	t.Run("4 subscribe to other inboxes", func(t *testing.T) {
		for _, subject := range []string{"_INBOX.>", ProviderInboxPrefix("B") + ".>", ">"} {
			a.subscribeRefused(t, subject)
		}
	})
	t.Run("5 answer as B", func(t *testing.T) {
		body := quoteBody(t, rfq2, "1")
		a.publishRefused(t, AnswerSubject("B"), body)
		a.refused(t, `Publish to "`+AnswerSubject("B")+`"`, func(ctx context.Context) error {
			_, err := a.nc.RequestWithContext(ctx, AnswerSubject("B"), body)
			return err
		})
		a.publishRefused(t, "rydes.answers.>", body)
	})
	t.Run("6 manage streams", func(t *testing.T) {
		a.refused(t, `Publish to "$JS.API.STREAM.CREATE.EVIL"`, func(ctx context.Context) error {
			_, err := a.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"rydes.dispatch.B.copy"}})
			return err
		})
		a.refused(t, `Publish to "$JS.API.STREAM.UPDATE.`+EventsStream+`"`, func(ctx context.Context) error {
			_, err := a.js.UpdateStream(ctx, StreamConfigs(Config{Replicas: 1})[1])
			return err
		})
		a.refused(t, `Publish to "$JS.API.STREAM.DELETE.`+DispatchStream+`"`, func(ctx context.Context) error {
			return a.js.DeleteStream(ctx, DispatchStream)
		})
		a.refused(t, `Publish to "$JS.API.STREAM.PURGE.`+DispatchStream+`"`,
			request(a.nc, "$JS.API.STREAM.PURGE."+DispatchStream, []byte(`{"filter":"rydes.dispatch.B"}`)))
		a.refused(t, `Publish to "$JS.API.STREAM.INFO.`+DispatchStream+`"`, func(ctx context.Context) error {
			_, err := a.js.Stream(ctx, DispatchStream)
			return err
		})
		a.refused(t, `Publish to "$JS.API.STREAM.MSG.GET.`+DispatchStream+`"`,
			request(a.nc, "$JS.API.STREAM.MSG.GET."+DispatchStream, []byte(`{"last_by_subj":"rydes.dispatch.B"}`)))
		a.refused(t, `Publish to "$JS.API.DIRECT.GET.`+DispatchStream+`"`,
			request(a.nc, "$JS.API.DIRECT.GET."+DispatchStream, []byte(`{"last_by_subj":"rydes.dispatch.B"}`)))
		a.refused(t, `Publish to "$JS.API.STREAM.NAMES"`, request(a.nc, "$JS.API.STREAM.NAMES", []byte(`{}`)))
		a.refused(t, `Publish to "$JS.API.INFO"`, func(ctx context.Context) error {
			_, err := a.js.AccountInfo(ctx)
			return err
		})
	})
	t.Run("7 manage consumers", func(t *testing.T) {
		a.refused(t, `Publish to "$JS.API.CONSUMER.CREATE.`+DispatchStream+`.evil.rydes.dispatch.B"`, func(ctx context.Context) error {
			_, err := a.js.CreateOrUpdateConsumer(ctx, DispatchStream, jetstream.ConsumerConfig{Durable: "evil", FilterSubject: DispatchFilters("B")[1]})
			return err
		})
		// Widening its own queue to B's requests.
		a.refused(t, `Publish to "$JS.API.CONSUMER.CREATE.`+DispatchStream+`.provider-A.rydes.dispatch.B"`, func(ctx context.Context) error {
			_, err := a.js.CreateOrUpdateConsumer(ctx, DispatchStream, jetstream.ConsumerConfig{Durable: ProviderQueue("A"), FilterSubject: DispatchFilters("B")[1]})
			return err
		})
		a.refused(t, `Publish to "$JS.API.CONSUMER.CREATE.`+EventsStream+`.`, func(ctx context.Context) error {
			_, err := a.js.CreateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{})
			return err
		})
		a.refused(t, `Publish to "$JS.API.CONSUMER.DELETE.`+bQueue+`"`, func(ctx context.Context) error {
			return a.js.DeleteConsumer(ctx, DispatchStream, ProviderQueue("B"))
		})
		a.refused(t, `Publish to "$JS.API.CONSUMER.DELETE.`+DispatchStream+`.provider-A"`, func(ctx context.Context) error {
			return a.js.DeleteConsumer(ctx, DispatchStream, ProviderQueue("A"))
		})
		a.refused(t, `Publish to "$JS.API.CONSUMER.LIST.`+DispatchStream+`"`,
			request(a.nc, "$JS.API.CONSUMER.LIST."+DispatchStream, []byte(`{}`)))
	})
	t.Run("8 subscribe to events", func(t *testing.T) {
		a.subscribeRefused(t, "rydes.events.>")
		a.subscribeRefused(t, EventSubject(rfq2, rydes.EventQuote, 2))
	})
	t.Run("9 ack B's requests", func(t *testing.T) {
		a.publishRefused(t, "$JS.ACK."+bQueue+".1.2.1.1767225600000000000.0", []byte("+ACK"))
	})
	t.Run("10 publish requests or events", func(t *testing.T) {
		a.publishRefused(t, DispatchSubject("B", rydes.NewID()), []byte(`{}`))
		a.publishRefused(t, EventSubject(rfq2, rydes.EventComplete, 3), []byte(`{}`))
	})

	// Nothing changed: B's request still waits, undelivered; the streams
	// and queues are as they were.
	ab.waitQueue(t, "B", QueueInfo{Pending: 1})
	ab.waitQueue(t, "A", QueueInfo{Pending: 1})
	for name, msgs := range map[string]uint64{DispatchStream: 2, EventsStream: 0} {
		s, err := ab.js.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, msgs, s.CachedInfo().State.Msgs, name)
	}
	dispatch, err := ab.js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	lister := dispatch.ConsumerNames(ctx)
	var names []string
	for n := range lister.Name() {
		names = append(names, n)
	}
	require.NoError(t, lister.Err())
	require.ElementsMatch(t, []string{ProviderQueue("A"), ProviderQueue("B")}, names)
	_, err = ab.js.Stream(ctx, "EVIL")
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)

	// B, meanwhile, gets its request; A's refused subscription to B's
	// inboxes saw nothing of it.
	spy := a.subscribeRefused(t, ProviderInboxPrefix("B")+".>")
	b, err := ab.connect(t, "B", "pass-b")
	require.NoError(t, err)
	cons, err := b.js.Consumer(ctx, DispatchStream, ProviderQueue("B"))
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, rfq2, m.Headers().Get(HeaderRFQID))
	require.NoError(t, a.nc.Flush())
	msgs, _, err := spy.Pending()
	require.NoError(t, err)
	require.Zero(t, msgs)
	b.noViolations(t)
}

// TestProviderOwnPath checks that A's permissions are enough for
// everything the SDK does, without a single violation: look its queue up,
// pull, keep a request in progress, nak it, term it, ack it and wait for
// the confirmation, publish an answer and wait for its PubAck.
func TestProviderOwnPath(t *testing.T) {
	ab := setupAuth(t)
	ctx := rydestest.Context(t)
	a, err := ab.connect(t, "A", "pass-a")
	require.NoError(t, err)

	cons, err := a.js.Consumer(ctx, DispatchStream, ProviderQueue("A"))
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, rfq1, m.Headers().Get(HeaderRFQID))
	require.NoError(t, m.InProgress())
	require.NoError(t, m.Nak())
	m, err = cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, rfq1, m.Headers().Get(HeaderRFQID))

	answers := make(chan Inbound, 1)
	serveAnswers(t, ab.bus, func(_ context.Context, in Inbound) rydes.AnswerReceipt {
		answers <- in
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
	}, ServeOptions{})
	reply, err := a.nc.RequestWithContext(ctx, AnswerSubject("A"), quoteBody(t, rfq1, "12"))
	require.NoError(t, err)
	require.JSONEq(t, `{"outcome":"staged","rfq_status":"open"}`, string(reply.Data))
	require.NoError(t, m.DoubleAck(ctx))
	ab.waitQueue(t, "A", QueueInfo{})

	_, err = ab.bus.Publish(ctx, []store.OutboxMessage{openDispatch(3, rfq2, "A")})
	require.NoError(t, err)
	m, err = cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.NoError(t, m.TermWithReason("unreadable"))
	ab.waitQueue(t, "A", QueueInfo{})
	a.noViolations(t)

	// The answer is A's, taken from the subject it was sent on.
	got := <-answers
	require.NoError(t, got.Err)
	require.Equal(t, "A", got.Answer.Provider)
	require.Equal(t, rfq1, got.Answer.RFQID)
}

// TestProviderRunsThroughTheSDK runs A through the SDK end to end: its
// request is answered, the answer gathered as A's, the request acked.
func TestProviderRunsThroughTheSDK(t *testing.T) {
	ab := setupAuth(t)
	ctx := rydestest.Context(t)
	a, err := ab.connect(t, "A", "pass-a")
	require.NoError(t, err)
	p, err := provider.New(provider.Config{Conn: a.nc, ID: "A", Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		ran <- p.Run(runCtx, func(context.Context, rydes.ProviderRequest) (provider.Reply, error) {
			return provider.Quote(rydes.Price{Amount: "42", Currency: "EUR"}), nil
		})
	}()

	answers := make(chan Inbound, 1)
	stopServe := serveAnswers(t, ab.bus, func(_ context.Context, in Inbound) rydes.AnswerReceipt {
		answers <- in
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
	}, ServeOptions{})
	select {
	case in := <-answers:
		require.NoError(t, in.Err)
		require.Equal(t, "A", in.Answer.Provider)
		require.Equal(t, rfq1, in.Answer.RFQID)
		require.Equal(t, "42", in.Answer.Price.Amount)
	case <-ctx.Done():
		t.Fatal("no answer from A")
	}
	ab.waitQueue(t, "A", QueueInfo{})
	ab.waitQueue(t, "B", QueueInfo{Pending: 1})
	stopRun()
	require.NoError(t, <-ran)
	require.NoError(t, stopServe())
	a.noViolations(t)
}

func TestAuthenticationRefusals(t *testing.T) {
	ab := setupAuth(t)
	ab.providers.mu.Lock()
	ab.providers.broken["C"] = true
	ab.providers.mu.Unlock()
	ab.providers.set("C", "pass-c")

	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", "A", "pass-b"},
		{"unknown user", "Z", "pass-a"},
		{"the authenticator fails", "C", "pass-c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ab.connect(t, tc.user, tc.password)
			require.ErrorIs(t, err, nats.ErrAuthorization)
		})
	}
	t.Run("no credentials", func(t *testing.T) {
		_, err := nats.Connect(ab.emb.ClientURL())
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("internal user with a wrong password", func(t *testing.T) {
		_, err := nats.Connect(ab.emb.ClientURL(), nats.UserInfo(DefaultInternalUser, "guess"))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("a user that is not a provider id", func(t *testing.T) {
		ab.providers.set("a.b", "x")
		_, err := nats.Connect(ab.emb.ClientURL(), nats.UserInfo("a.b", "x"))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("empty password", func(t *testing.T) {
		ab.providers.set("E", "")
		_, err := nats.Connect(ab.emb.ClientURL(), nats.UserInfo("E", ""))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
}

func TestInternalUser(t *testing.T) {
	ctx := rydestest.Context(t)
	fp := newFakeProviders(map[string]string{})
	_, err := StartEmbedded(ctx, EmbeddedConfig{StoreDir: t.TempDir(), Providers: fp, InternalUser: "rydes"})
	require.ErrorContains(t, err, "could be a provider's id")

	emb, err := StartEmbedded(ctx, EmbeddedConfig{
		StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Providers: fp,
		InternalUser: "ops.admin", InternalPassword: "s3cret-internal",
		Logger: rydestest.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	// Over TCP too, the internal user may do anything.
	nc, err := nats.Connect(emb.ClientURL(), nats.UserInfo("ops.admin", "s3cret-internal"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := New(ctx, nc, Config{})
	require.NoError(t, err)
	b.Close()
	_, err = nats.Connect(emb.ClientURL(), nats.UserInfo("ops.admin", "s3cret-internaL"))
	require.ErrorIs(t, err, nats.ErrAuthorization)
}

func TestDisconnectUser(t *testing.T) {
	ab := setupAuth(t)
	ctx := rydestest.Context(t)
	closed := make(chan struct{}, 2)
	onClose := nats.ClosedHandler(func(*nats.Conn) { closed <- struct{}{} })
	a1, err := ab.connect(t, "A", "pass-a", onClose, nats.ReconnectWait(10*time.Millisecond))
	require.NoError(t, err)
	a2, err := ab.connect(t, "A", "pass-a", onClose, nats.ReconnectWait(10*time.Millisecond))
	require.NoError(t, err)
	b, err := ab.connect(t, "B", "pass-b")
	require.NoError(t, err)

	require.Zero(t, ab.emb.DisconnectUser("nobody"))
	require.Zero(t, ab.emb.DisconnectUser(""))
	require.Zero(t, ab.emb.DisconnectUser(DefaultInternalUser), "rydes's own connections stay")
	require.True(t, ab.nc.IsConnected())

	// A's password is rotated: its connections are closed and cannot come
	// back with the old password.
	ab.providers.set("A", "pass-a2")
	require.Equal(t, 2, ab.emb.DisconnectUser("A"))
	for range 2 {
		select {
		case <-closed:
		case <-ctx.Done():
			t.Fatal("A's connections did not close for good")
		}
	}
	require.True(t, a1.nc.IsClosed())
	require.True(t, a2.nc.IsClosed())
	_, err = ab.connect(t, "A", "pass-a")
	require.ErrorIs(t, err, nats.ErrAuthorization)
	a3, err := ab.connect(t, "A", "pass-a2")
	require.NoError(t, err)
	_, err = a3.js.Consumer(ctx, DispatchStream, ProviderQueue("A"))
	require.NoError(t, err)

	// B was not touched.
	require.True(t, b.nc.IsConnected())
	require.NoError(t, b.nc.FlushWithContext(ctx))
}

// TestDisconnectUserDuringCheck checks that a connection whose credentials
// were being checked while the user's connections were closed is refused.
func TestDisconnectUserDuringCheck(t *testing.T) {
	ab := setupAuth(t)
	gate := make(chan struct{})
	ab.providers.mu.Lock()
	ab.providers.block["A"] = gate
	ab.providers.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		_, err := ab.connect(t, "A", "pass-a")
		done <- err
	}()
	select {
	case <-ab.providers.entered:
	case <-rydestest.Context(t).Done():
		t.Fatal("the check did not start")
	}
	ab.emb.DisconnectUser("A")
	close(gate) // the (old) password checks out, too late
	// Refused, or closed while being checked: either way, not connected.
	require.Error(t, <-done)
}

// TestReplySubjectCannotForgeAnAnswer documents a limit of NATS subject
// permissions: they do not cover reply subjects, so A can have the server
// or rydes send their responses (a consumer info, an answer receipt) to
// B's answer subject, where the answer service takes them as B's. Their
// bodies are the server's or rydes's, not A's, and none is a valid answer:
// each is refused as invalid (and, sent without a reply subject, gets no
// receipt, so nothing loops).
func TestReplySubjectCannotForgeAnAnswer(t *testing.T) {
	ab := setupAuth(t)
	a, err := ab.connect(t, "A", "pass-a")
	require.NoError(t, err)
	received := make(chan Inbound, 4)
	serveAnswers(t, ab.bus, func(_ context.Context, in Inbound) rydes.AnswerReceipt {
		received <- in
		if in.Err != nil {
			return rydes.AnswerReceipt{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectInvalid, Message: in.Err.Error()}
		}
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
	}, ServeOptions{})
	for _, m := range []*nats.Msg{
		{Subject: AnswerSubject("A"), Reply: AnswerSubject("B"), Data: quoteBody(t, rfq2, "1")},
		{Subject: "$JS.API.CONSUMER.INFO." + DispatchStream + "." + ProviderQueue("A"), Reply: AnswerSubject("B")},
	} {
		require.NoError(t, a.nc.PublishMsg(m))
	}
	require.NoError(t, a.nc.Flush())
	a.noViolations(t)

	byProvider := map[string][]Inbound{}
	for range 3 { // A's answer, and the two responses reflected to B
		select {
		case in := <-received:
			byProvider[in.Answer.Provider] = append(byProvider[in.Answer.Provider], in)
		case <-time.After(rydestest.WaitTimeout):
			t.Fatalf("got %d of 3 messages", len(byProvider["A"])+len(byProvider["B"]))
		}
	}
	require.Len(t, byProvider["A"], 1)
	require.NoError(t, byProvider["A"][0].Err)
	require.Len(t, byProvider["B"], 2)
	for _, in := range byProvider["B"] {
		require.Error(t, in.Err, "a reflected response decoded as B's answer: %s", in.Payload)
	}
}
