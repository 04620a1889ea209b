package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/store"
)

func TestUnpublished(t *testing.T) {
	msgs := func(ids ...int64) []store.OutboxMessage {
		out := make([]store.OutboxMessage, len(ids))
		for i, id := range ids {
			out[i] = store.OutboxMessage{ID: id}
		}
		return out
	}
	ids := func(ms []store.OutboxMessage) []int64 {
		out := []int64{}
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	r := &relay{inflight: map[int64]struct{}{2: {}, 4: {}}}
	for _, tc := range []struct {
		in, want []int64
	}{
		{nil, []int64{}},
		{[]int64{1, 3, 5}, []int64{1, 3, 5}},
		{[]int64{1, 2, 3, 4, 5}, []int64{1, 3, 5}},
		{[]int64{2, 4}, []int64{}},
		{[]int64{4, 6}, []int64{6}},
	} {
		in := msgs(tc.in...)
		got := r.unpublished(in)
		require.Equal(t, tc.want, ids(got), "in %v", tc.in)
		require.Equal(t, ids(msgs(tc.in...)), ids(in), "the input is left as it was")
	}
	none := msgs(1, 3)
	require.Same(t, &none[0], &r.unpublished(none)[0], "nothing in flight: the same slice, no copy")
}
