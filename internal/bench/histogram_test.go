package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogramPercentilesOfKnownData(t *testing.T) {
	h := NewHistogram()
	// 1 ms .. 1000 ms, one each: the p-th percentile is p*10 ms.
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	p := h.Percentiles()
	require.EqualValues(t, 1000, p.Count)
	within := func(want, got float64) {
		t.Helper()
		require.InDelta(t, want, got, want*0.001+0.001, "want %g ms, got %g", want, got)
	}
	within(500, p.P50)
	within(900, p.P90)
	within(990, p.P99)
	within(999, p.P999)
	within(1000, p.Max)
	within(500.5, p.Mean)
}

func TestHistogramClampsOutOfRange(t *testing.T) {
	h := NewHistogram()
	h.Record(-time.Second)
	h.Record(time.Hour)
	p := h.Percentiles()
	require.EqualValues(t, 2, p.Count)
	require.Zero(t, p.P50)
	require.InDelta(t, float64(10*time.Minute/time.Millisecond), p.Max, 600)
}

func TestHistogramEmpty(t *testing.T) {
	p := NewHistogram().Percentiles()
	require.Zero(t, p.Count)
	require.Zero(t, p.P99)
}
