package fsinfo

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOnTmpfs(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm on this machine")
	}
	got, err := OnTmpfs("/dev/shm")
	require.NoError(t, err)
	require.True(t, got, "/dev/shm is a tmpfs on Linux")

	_, err = OnTmpfs("/does/not/exist")
	require.Error(t, err)
}
