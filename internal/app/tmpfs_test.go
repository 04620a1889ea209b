//go:build linux

package app

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/fsinfo"
)

func TestStartRefusesTmpfs(t *testing.T) {
	if ok, err := fsinfo.OnTmpfs("/dev/shm"); err != nil || !ok {
		t.Skip("no tmpfs at /dev/shm on this machine")
	}
	dir, err := os.MkdirTemp("/dev/shm", "rydes-test-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	_, err = Start(t.Context(), Config{HTTPAddr: "127.0.0.1:0", DataDir: dir, RFQTimeout: 30e9, RFQMaxTimeout: 60e9})
	require.ErrorContains(t, err, "tmpfs")
}

func TestRetentionShorterThanARequestIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(t.Context(), Config{HTTPAddr: "127.0.0.1:0", DataDir: dir, RFQTimeout: 30e9, RFQMaxTimeout: 60e9, Retention: 59e9})
	require.ErrorContains(t, err, "retention")
	_, err = Start(t.Context(), Config{HTTPAddr: "127.0.0.1:0", DataDir: dir, RFQTimeout: 30e9, RFQMaxTimeout: 60e9, Retention: -1})
	require.ErrorContains(t, err, "negative")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "refused before anything was created")
}
