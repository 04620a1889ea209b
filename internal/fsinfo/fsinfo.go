// Package fsinfo tells what kind of filesystem a directory is on, for what
// depends on the disk keeping what is written: rydes refuses a data dir on
// a tmpfs, and its bench would measure no fsync there.
package fsinfo
