package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// requireSeq checks that RFQ r's Seq, as GetRFQ returns it, is want and the
// seq of its last event in the outbox.
func requireSeq(t *testing.T, s store.Store, r rydes.RFQ, want int64) {
	t.Helper()
	got := get(t, s, r.ID)
	require.Equal(t, want, got.Seq, "RFQ %s", r.ID)
	evs := events(t, s, r.ID)
	require.NotEmpty(t, evs)
	require.Equal(t, evs[len(evs)-1].Seq, got.Seq, "RFQ %s: Seq is the last event's", r.ID)
}

// testSeq checks that an RFQ's Seq grows with each of its events: creation,
// each staged answer, completion, expiry, cancellation.
func testSeq(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	at := func(d time.Duration) time.Time { return base.Add(d) }

	done := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2", "p3"}})
	requireSeq(t, s, done, 1)
	stage(t, s, at(time.Second), quote(done, "p1", "10", at(time.Second)))
	requireSeq(t, s, done, 2)
	stage(t, s, at(2*time.Second), decline(done, "p2", "", at(2*time.Second)))
	requireSeq(t, s, done, 3)
	stage(t, s, at(3*time.Second), quote(done, "p1", "10", at(time.Second)))
	requireSeq(t, s, done, 3) // a duplicate changes nothing
	stage(t, s, at(3*time.Second), quote(done, "stranger", "1", at(3*time.Second)))
	requireSeq(t, s, done, 3) // nor does a rejected answer
	stage(t, s, at(4*time.Second), quote(done, "p3", "9", at(4*time.Second)))
	requireSeq(t, s, done, 5) // quote, then complete

	expired := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2", "p3"}})
	stage(t, s, at(time.Second), quote(expired, "p2", "10", at(time.Second)))
	requireSeq(t, s, expired, 2)
	require.Equal(t, []string{expired.ID}, expire(t, s, expired.Deadline, 0))
	requireSeq(t, s, expired, 5) // two providers timed out, then expired

	cancelled := createRFQ(t, s, rfqOpts{Customer: "ivan", Providers: []string{"p1", "p2"}})
	stage(t, s, at(time.Second), decline(cancelled, "p1", "", at(time.Second)))
	res, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: cancelled.ID, Customer: "ivan", Now: at(2 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, int64(4), res.Event.Seq, "p2 withdrawn, then cancelled")
	require.Equal(t, res.Event.Seq, res.RFQ.Seq, "CancelRFQ returns the RFQ at its cancelled event")
	requireSeq(t, s, cancelled, 4)
	require.Equal(t, res.RFQ, get(t, s, cancelled.ID))

	scoped, err := s.GetRFQ(ctx, store.GetRFQParams{ID: done.ID, Customer: done.Customer})
	require.NoError(t, err)
	require.Equal(t, int64(5), scoped.Seq)
}

// testSeqAfterProviderChanges checks that the events of roster changes that
// are not answers (failed, withdrawn) advance Seq too.
func testSeqAfterProviderChanges(t *testing.T, s store.Store) {
	createProvider(t, s, natsProvider("gone"), secretsFor("gone", "1"), base)
	r := createRFQ(t, s, rfqOpts{Providers: []string{"gone", "flaky", "p3"}})
	markFailed(t, s, r, "flaky", "HTTP 503", base.Add(time.Second))
	requireSeq(t, s, r, 2)
	require.Equal(t, []string{r.ID}, deleteProvider(t, s, "gone", base.Add(2*time.Second)))
	requireSeq(t, s, r, 3)
	stage(t, s, base.Add(3*time.Second), decline(r, "p3", "", base.Add(3*time.Second)))
	requireSeq(t, s, r, 5) // decline, then complete
}

// testNotifyTarget checks that an RFQ's notify URL is kept and returned by
// GetRFQ, and its notify secret only by NotifyTarget.
func testNotifyTarget(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	const url, secret = "https://hooks.example.com/rydes?tenant=7", "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
	r := newRFQ(t, rfqOpts{Customer: "judy", NotifyURL: url})
	r.NotifySecret = secret
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))

	want := r
	want.NotifySecret = ""
	got := get(t, s, r.ID)
	require.Equal(t, want, got, "GetRFQ returns the notify URL, not the secret")
	require.Equal(t, url, got.NotifyURL)
	require.Empty(t, got.NotifySecret)

	gotURL, gotSecret, err := s.NotifyTarget(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, url, gotURL)
	require.Equal(t, secret, gotSecret)

	res, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: r.ID, Now: base.Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, url, res.RFQ.NotifyURL)
	require.Empty(t, res.RFQ.NotifySecret, "CancelRFQ does not return the secret either")
	gotURL, gotSecret, err = s.NotifyTarget(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, []string{url, secret}, []string{gotURL, gotSecret}, "a final RFQ keeps its target")

	plain := createRFQ(t, s, rfqOpts{})
	require.Empty(t, get(t, s, plain.ID).NotifyURL)
	gotURL, gotSecret, err = s.NotifyTarget(ctx, plain.ID)
	require.NoError(t, err)
	require.Empty(t, gotURL)
	require.Empty(t, gotSecret)

	_, _, err = s.NotifyTarget(ctx, rydes.NewID())
	requireCode(t, rydes.ENOTFOUND, err)
}

// recordNotification records n and returns it as stored.
func recordNotification(t *testing.T, s store.Store, n rydes.Notification) rydes.Notification {
	t.Helper()
	got, err := s.RecordNotification(rydestest.Context(t), n)
	require.NoError(t, err)
	return got
}

func listNotifications(t *testing.T, s store.Store, rfqID string) []rydes.Notification {
	t.Helper()
	ns, err := s.ListNotifications(rydestest.Context(t), rfqID)
	require.NoError(t, err)
	return ns
}

func notificationDelivered(t *testing.T, s store.Store, rfqID string, event rydes.EventType) bool {
	t.Helper()
	ok, err := s.NotificationDelivered(rydestest.Context(t), rfqID, event)
	require.NoError(t, err)
	return ok
}

// testNotifications checks the numbering of attempts per RFQ and event, the
// order of the log, and when a delivery counts as done.
func testNotifications(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{NotifyURL: "https://hooks.example.com/a"})
	other := createRFQ(t, s, rfqOpts{NotifyURL: "https://hooks.example.com/b"})
	require.NotNil(t, listNotifications(t, s, r.ID))
	require.Empty(t, listNotifications(t, s, r.ID))
	require.False(t, notificationDelivered(t, s, r.ID, rydes.EventComplete))

	at := func(d time.Duration) time.Time { return base.Add(time.Minute + d) }
	first := recordNotification(t, s, rydes.Notification{
		RFQID: r.ID, Event: rydes.EventComplete, Attempt: 7, // ignored: the store numbers
		At: at(0), Status: 503, Error: "HTTP 503: busy",
	})
	require.Equal(t, rydes.Notification{RFQID: r.ID, Event: rydes.EventComplete, Attempt: 1, At: at(0), Status: 503, Error: "HTTP 503: busy"}, first)
	second := recordNotification(t, s, rydes.Notification{
		RFQID: r.ID, Event: rydes.EventComplete, At: at(time.Second + 123*time.Microsecond), Error: "network error: connection refused",
	})
	require.Equal(t, 2, second.Attempt)
	require.Zero(t, second.Status, "no response came back")
	require.False(t, notificationDelivered(t, s, r.ID, rydes.EventComplete), "failed attempts deliver nothing")

	// Another RFQ's attempts and another event's are numbered on their own.
	elsewhere := recordNotification(t, s, rydes.Notification{RFQID: other.ID, Event: rydes.EventComplete, At: at(2 * time.Second), Status: 500, Error: "HTTP 500"})
	require.Equal(t, 1, elsewhere.Attempt)
	otherEvent := recordNotification(t, s, rydes.Notification{RFQID: r.ID, Event: rydes.EventCancelled, At: at(3 * time.Second), Status: 410, Error: "HTTP 410"})
	require.Equal(t, 1, otherEvent.Attempt)

	third := recordNotification(t, s, rydes.Notification{RFQID: r.ID, Event: rydes.EventComplete, At: at(4 * time.Second), Status: 204, Delivered: true})
	require.Equal(t, rydes.Notification{RFQID: r.ID, Event: rydes.EventComplete, Attempt: 3, At: at(4 * time.Second), Status: 204, Delivered: true}, third)

	require.True(t, notificationDelivered(t, s, r.ID, rydes.EventComplete))
	require.False(t, notificationDelivered(t, s, r.ID, rydes.EventCancelled), "delivered per event")
	require.False(t, notificationDelivered(t, s, r.ID, rydes.EventExpired))
	require.False(t, notificationDelivered(t, s, other.ID, rydes.EventComplete), "delivered per RFQ")
	require.False(t, notificationDelivered(t, s, rydes.NewID(), rydes.EventComplete))

	// A redelivered message that is sent again after all keeps numbering,
	// and the RFQ stays delivered whatever the later attempt did.
	fourth := recordNotification(t, s, rydes.Notification{RFQID: r.ID, Event: rydes.EventComplete, At: at(5 * time.Second), Status: 500, Error: "HTTP 500"})
	require.Equal(t, 4, fourth.Attempt)
	require.True(t, notificationDelivered(t, s, r.ID, rydes.EventComplete))

	require.Equal(t, []rydes.Notification{first, second, otherEvent, third, fourth}, listNotifications(t, s, r.ID), "oldest first")
	require.Equal(t, []rydes.Notification{elsewhere}, listNotifications(t, s, other.ID))
	require.Empty(t, listNotifications(t, s, rydes.NewID()))
}

// testNotificationAttemptsRace records attempts of one RFQ and event from
// many goroutines at once: each gets its own number, 1 to n.
func testNotificationAttemptsRace(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r := createRFQ(t, s, rfqOpts{NotifyURL: "https://hooks.example.com/race"})
	const n = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		attempts = map[int]bool{}
	)
	for i := range n {
		wg.Go(func() {
			got, err := s.RecordNotification(ctx, rydes.Notification{
				RFQID: r.ID, Event: rydes.EventExpired, At: base.Add(time.Duration(i) * time.Millisecond),
				Status: 503, Error: fmt.Sprintf("HTTP 503 (%d)", i),
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			attempts[got.Attempt] = true
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, attempts, n, "distinct attempt numbers")
	for i := 1; i <= n; i++ {
		require.True(t, attempts[i], "attempt %d", i)
	}
	require.Len(t, listNotifications(t, s, r.ID), n)
}
