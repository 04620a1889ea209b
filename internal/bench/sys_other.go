//go:build !linux

package bench

import (
	"errors"
	"os"
	"time"
)

var errUnsupported = errors.New("not measured outside Linux")

// cpuTime is not measured outside Linux.
func cpuTime() (time.Duration, error) { return 0, errUnsupported }

// memory is not measured outside Linux.
func memory() (rss, peak int64, err error) { return 0, 0, errUnsupported }

// memoryOf is not measured outside Linux.
func memoryOf(int) (rss, peak int64, err error) { return 0, 0, errUnsupported }

// fdatasync flushes f to the disk; outside Linux with fsync.
func fdatasync(f *os.File) error { return f.Sync() }
