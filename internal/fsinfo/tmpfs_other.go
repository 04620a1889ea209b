//go:build !linux

package fsinfo

// OnTmpfs reports whether dir is on a tmpfs; outside Linux it cannot tell
// and assumes not.
func OnTmpfs(string) (bool, error) { return false, nil }
