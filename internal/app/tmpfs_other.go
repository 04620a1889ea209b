//go:build !linux

package app

// onTmpfs reports whether dir is on a tmpfs; outside Linux rydes cannot
// tell and assumes not.
func onTmpfs(string) (bool, error) { return false, nil }
