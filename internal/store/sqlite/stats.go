package sqlite

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wildrydes/rydes"
)

// statsAnswers is how many of a provider's most recent answers its response
// time percentiles are computed over (Store.statsWindow).
const statsAnswers = 10_000

// sqlCountPending counts a provider's pending entries: it walks the open
// RFQs and looks the provider up in each roster by primary key.
const sqlCountPending = `
	SELECT COUNT(*) FROM rfqs r CROSS JOIN roster ro ON ro.rfq_id = r.id AND ro.provider = ?
	WHERE r.status = 'open' AND ro.state = 'pending'`

// sqlCountDone counts a provider's other entries by state, from the
// roster_provider index.
const sqlCountDone = `SELECT state, COUNT(*) FROM roster WHERE provider = ? AND state <> 'pending' GROUP BY state`

// sqlLatestAnswers gives the response times of a provider's latest ?2
// answers: its latest quotes and its latest declines, each read in order
// from roster_provider, then the latest of both, so that the work is
// bounded by the window, not by the provider's history. "state <>
// 'pending'" is roster_provider's condition: SQLite uses a partial index
// only for a query that states it.
const sqlLatestAnswers = `
	SELECT answered - created FROM (
		SELECT * FROM (
			SELECT ro.changed_at AS answered, r.created_at AS created
			FROM roster ro JOIN rfqs r ON r.id = ro.rfq_id
			WHERE ro.provider = ?1 AND ro.state = 'quoted' AND ro.state <> 'pending'
			ORDER BY ro.changed_at DESC LIMIT ?2)
		UNION ALL
		SELECT * FROM (
			SELECT ro.changed_at AS answered, r.created_at AS created
			FROM roster ro JOIN rfqs r ON r.id = ro.rfq_id
			WHERE ro.provider = ?1 AND ro.state = 'declined' AND ro.state <> 'pending'
			ORDER BY ro.changed_at DESC LIMIT ?2))
	ORDER BY answered DESC LIMIT ?2`

// ProviderStats counts the provider's roster entries by state and gives the
// 50th and 99th percentiles (nearest rank) of its response times, the time
// from an RFQ's creation to the staging of the provider's answer, over its
// statsAnswers most recent answers; 0 when it has none. The queue fields are
// left zero. It works for any id, deleted providers included: their past
// RFQs remain.
func (s *Store) ProviderStats(ctx context.Context, id string) (rydes.ProviderStats, error) {
	st := rydes.ProviderStats{Provider: id}
	var times []time.Duration
	err := s.read(ctx, "provider stats", func(tx *txn) error {
		// Pending entries are in open RFQs only, and roster_provider leaves
		// them out: they are counted through the open RFQs.
		if err := tx.QueryRowContext(ctx, sqlCountPending, id).Scan(&st.Pending); err != nil {
			return err
		}
		st.Asked = st.Pending
		rows, err := tx.QueryContext(ctx, sqlCountDone, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				state rydes.ProviderState
				n     int
			)
			if err := rows.Scan(&state, &n); err != nil {
				return err
			}
			switch state {
			case rydes.ProviderQuoted:
				st.Quoted = n
			case rydes.ProviderDeclined:
				st.Declined = n
			case rydes.ProviderTimedOut:
				st.TimedOut = n
			case rydes.ProviderFailed:
				st.Failed = n
			case rydes.ProviderWithdrawn:
				st.Withdrawn = n
			default:
				return fmt.Errorf("provider %s: roster state %q", id, state)
			}
			st.Asked += n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()

		rows, err = tx.QueryContext(ctx, sqlLatestAnswers, id, s.statsWindow)
		if err != nil {
			return err
		}
		defer rows.Close()
		times = make([]time.Duration, 0, min(st.Quoted+st.Declined, s.statsWindow))
		for rows.Next() {
			var us int64
			if err := rows.Scan(&us); err != nil {
				return err
			}
			times = append(times, max(time.Duration(us)*time.Microsecond, 0))
		}
		return rows.Err()
	})
	if err != nil {
		return rydes.ProviderStats{}, err
	}
	slices.Sort(times)
	st.ResponseP50 = rydes.Duration(percentile(times, 50))
	st.ResponseP99 = rydes.Duration(percentile(times, 99))
	return st, nil
}

// percentile returns the p-th percentile of sorted by the nearest-rank
// method: the smallest value that at least p percent of the values are at
// or below. 0 for no values.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
