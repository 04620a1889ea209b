package rydes_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
)

func TestPriceUnitsAndValidate(t *testing.T) {
	for _, tc := range []struct {
		amount, currency string
		units            int64
		field            string
	}{
		{"45", "EUR", 450_000, ""},
		{"45.5", "USD", 455_000, ""},
		{"12.34", "USD", 123_400, ""},
		{"7.0001", "USD", 70_001, ""},
		{"999999.9999", "USD", 9_999_999_999, ""},
		{"0.0001", "JPY", 1, ""},
		{"1000000", "EUR", 1_000_000 * rydes.PriceScale, ""},
		{"1000000.0001", "EUR", 0, "price.amount"},
		{"0", "EUR", 0, "price.amount"},
		{"0.00", "EUR", 0, "price.amount"},
		{"-3", "EUR", 0, "price.amount"},
		{"1e3", "EUR", 0, "price.amount"},
		{"1.", "EUR", 0, "price.amount"},
		{".5", "EUR", 0, "price.amount"},
		{"1.23456", "EUR", 0, "price.amount"},
		{" 1", "EUR", 0, "price.amount"},
		{"", "EUR", 0, "price.amount"},
		{"99999999", "EUR", 0, "price.amount"},
		{"10", "eur", 0, "price.currency"},
		{"10", "XYZ", 0, "price.currency"},
		{"10", "EURO", 0, "price.currency"},
		{"10", "", 0, "price.currency"},
	} {
		t.Run(tc.amount+" "+tc.currency, func(t *testing.T) {
			p := rydes.Price{Amount: tc.amount, Currency: tc.currency}
			err := p.Validate()
			if tc.field != "" {
				require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err))
				require.Equal(t, tc.field, rydes.ErrorFieldOf(err))
				return
			}
			require.NoError(t, err)
			u, err := p.Units()
			require.NoError(t, err)
			require.Equal(t, tc.units, u)
		})
	}
}

// Units is on the path of every staged answer and every read of quotes:
// a valid amount, with decimals or without, allocates nothing.
func TestPriceUnitsAllocatesNothing(t *testing.T) {
	for _, amount := range []string{"45", "45.50"} {
		p := rydes.Price{Amount: amount, Currency: "EUR"}
		require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = p.Units() }), amount)
	}
}

func TestSortQuotesBestFirst(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	qs := []rydes.Quote{
		{Provider: "c", Price: rydes.Price{Amount: "10", Currency: "USD"}, ReceivedAt: at},
		{Provider: "b", Price: rydes.Price{Amount: "9.99", Currency: "USD"}, ReceivedAt: at.Add(time.Second)},
		{Provider: "a", Price: rydes.Price{Amount: "10.00", Currency: "USD"}, ReceivedAt: at},
		{Provider: "d", Price: rydes.Price{Amount: "10", Currency: "USD"}, ReceivedAt: at.Add(-time.Second)},
	}
	rydes.SortQuotes(qs)
	var order []string
	for _, q := range qs {
		order = append(order, q.Provider)
	}
	require.Equal(t, []string{"b", "d", "a", "c"}, order, "price, then earliest, then provider")
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	deadline := now.Add(time.Minute)
	rfq := rydes.NewID()
	q := rydes.Answer{RFQID: rfq, Provider: "p1", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "10", Currency: "EUR"}, ReceivedAt: now}
	d := rydes.Answer{RFQID: rfq, Provider: "p1", Kind: rydes.AnswerDecline, ReceivedAt: now}
	pending := &rydes.Prior{Entry: rydes.RosterEntry{Provider: "p1", State: rydes.ProviderPending}}
	quoted := &rydes.Prior{Entry: rydes.RosterEntry{Provider: "p1", State: rydes.ProviderQuoted}, Answer: &q}
	timedOut := &rydes.Prior{Entry: rydes.RosterEntry{Provider: "p1", State: rydes.ProviderTimedOut}}
	withdrawn := &rydes.Prior{Entry: rydes.RosterEntry{Provider: "p1", State: rydes.ProviderWithdrawn}}
	failed := &rydes.Prior{Entry: rydes.RosterEntry{Provider: "p1", State: rydes.ProviderFailed, Reason: "HTTP 500"}}
	cheaper := q
	cheaper.Price.Amount = "5"
	later := q
	later.ReceivedAt = now.Add(time.Second)
	bad := q
	bad.Price.Currency = "???"
	atDeadline := q
	atDeadline.ReceivedAt = deadline
	unstamped := q
	unstamped.ReceivedAt = time.Time{}

	for _, tc := range []struct {
		name    string
		status  rydes.Status
		prior   *rydes.Prior
		answer  rydes.Answer
		now     time.Time
		outcome rydes.Outcome
		reason  rydes.RejectReason
	}{
		{"quote", rydes.StatusOpen, pending, q, now, rydes.OutcomeStaged, ""},
		{"decline", rydes.StatusOpen, pending, d, now, rydes.OutcomeStaged, ""},
		{"invalid", rydes.StatusOpen, pending, bad, now, rydes.OutcomeRejected, rydes.RejectInvalid},
		{"not asked", rydes.StatusOpen, nil, q, now, rydes.OutcomeRejected, rydes.RejectNotAsked},
		{"redelivery", rydes.StatusOpen, quoted, later, now, rydes.OutcomeDuplicate, ""},
		{"redelivery after complete", rydes.StatusComplete, quoted, q, now, rydes.OutcomeDuplicate, ""},
		{"changed answer", rydes.StatusOpen, quoted, cheaper, now, rydes.OutcomeRejected, rydes.RejectAlreadyAnswered},
		{"decline after quote", rydes.StatusOpen, quoted, d, now, rydes.OutcomeRejected, rydes.RejectAlreadyAnswered},
		{"received at the deadline", rydes.StatusOpen, pending, atDeadline, deadline, rydes.OutcomeRejected, rydes.RejectLate},
		{"received in time, decided after the deadline (held up by a crash)", rydes.StatusOpen, pending, q, deadline.Add(time.Minute), rydes.OutcomeStaged, ""},
		{"no receipt time: judged at now", rydes.StatusOpen, pending, unstamped, deadline, rydes.OutcomeRejected, rydes.RejectLate},
		{"after expiry", rydes.StatusExpired, timedOut, q, now, rydes.OutcomeRejected, rydes.RejectLate},
		{"cancelled", rydes.StatusCancelled, pending, q, now, rydes.OutcomeRejected, rydes.RejectClosed},
		{"cancelled: withdrawn by the cancel", rydes.StatusCancelled, withdrawn, q, now, rydes.OutcomeRejected, rydes.RejectClosed},
		{"withdrawn", rydes.StatusOpen, withdrawn, q, now, rydes.OutcomeRejected, rydes.RejectWithdrawn},
		{"failed provider answers in time", rydes.StatusOpen, failed, q, now, rydes.OutcomeStaged, ""},
		{"failed provider answers after completion", rydes.StatusComplete, failed, q, now, rydes.OutcomeRejected, rydes.RejectClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rydes.Decide(tc.status, deadline, tc.prior, tc.answer, tc.now)
			require.Equal(t, tc.outcome, got.Outcome)
			require.Equal(t, tc.reason, got.Reason)
			if tc.outcome == rydes.OutcomeRejected {
				require.NotEmpty(t, got.Message)
			}
		})
	}
}
