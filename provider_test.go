package rydes_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
)

func TestCompareProviderIDs(t *testing.T) {
	ids := []string{"U10", "U2", "U1", "b", "U02", "a9", "a10", "U", "U2x", "a"}
	slices.SortFunc(ids, rydes.CompareProviderIDs)
	require.Equal(t, []string{"U", "U1", "U02", "U2", "U2x", "U10", "a", "a9", "a10", "b"}, ids)
	require.Zero(t, rydes.CompareProviderIDs("p1", "p1"))
}
