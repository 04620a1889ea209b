package fsinfo

import (
	"fmt"
	"syscall"
)

// tmpfsMagic is the filesystem type of tmpfs in statfs(2).
const tmpfsMagic = 0x01021994

// OnTmpfs reports whether dir is on a tmpfs, whose contents a reboot or
// power loss erases and where fsync costs nothing.
func OnTmpfs(dir string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Type == tmpfsMagic, nil
}
