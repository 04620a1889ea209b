package main

import (
	"bytes"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testFlags is a flag set with one flag of each common kind.
type testFlags struct {
	fs      *flag.FlagSet
	out     *bytes.Buffer
	server  *string
	apiKey  *string
	json    *bool
	timeout *time.Duration
	n       *int
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: flag.NewFlagSet("test", flag.ContinueOnError), out: &bytes.Buffer{}}
	f.fs.SetOutput(f.out)
	f.server = f.fs.String("server", "http://default", "server")
	f.apiKey = f.fs.String("api-key", "", "key")
	f.json = f.fs.Bool("json", false, "json")
	f.timeout = f.fs.Duration("timeout", time.Second, "timeout")
	f.n = f.fs.Int("n", 1, "n")
	return f
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestEnvName(t *testing.T) {
	require.Equal(t, "RYDES_SERVER", envName("server"))
	require.Equal(t, "RYDES_API_KEY", envName("api-key"))
	require.Equal(t, "RYDES_SIM_MAX_DELAY", envName("sim-max-delay"))
	require.Equal(t, "RYDES_LOG_LEVEL", envName("log.level"))
}

func TestParseFlagsInterspersed(t *testing.T) {
	f := newTestFlags()
	err := parseFlags(f.fs, []string{"ID", "--json", "--server", "http://x", "more", "-n=3"}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"ID", "more"}, f.fs.Args())
	require.True(t, *f.json)
	require.Equal(t, "http://x", *f.server)
	require.Equal(t, 3, *f.n)
}

func TestParseFlagsDoubleDashEndsFlags(t *testing.T) {
	f := newTestFlags()
	err := parseFlags(f.fs, []string{"--json", "ID", "--", "--server", "-n", "x"}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"ID", "--server", "-n", "x"}, f.fs.Args())
	require.True(t, *f.json)
	require.Equal(t, "http://default", *f.server)
	require.Equal(t, 1, *f.n)
}

func TestParseFlagsEnv(t *testing.T) {
	f := newTestFlags()
	env := envOf(map[string]string{
		"RYDES_SERVER":  "http://from-env",
		"RYDES_API_KEY": "k3y",
		"RYDES_JSON":    "true",
		"RYDES_TIMEOUT": "45s",
		"RYDES_N":       "", // empty: as if unset
	})
	require.NoError(t, parseFlags(f.fs, []string{"--timeout", "2m"}, env))
	require.Equal(t, "http://from-env", *f.server)
	require.Equal(t, "k3y", *f.apiKey)
	require.True(t, *f.json)
	require.Equal(t, 2*time.Minute, *f.timeout, "the command line wins over the environment")
	require.Equal(t, 1, *f.n, "an empty variable leaves the default")
}

func TestParseFlagsCommandLineWinsEvenWithDefaultValue(t *testing.T) {
	f := newTestFlags()
	env := envOf(map[string]string{"RYDES_JSON": "true", "RYDES_SERVER": "http://from-env"})
	require.NoError(t, parseFlags(f.fs, []string{"--json=false", "--server", "http://default"}, env))
	require.False(t, *f.json)
	require.Equal(t, "http://default", *f.server)
}

func TestParseFlagsInvalidEnv(t *testing.T) {
	f := newTestFlags()
	env := envOf(map[string]string{"RYDES_TIMEOUT": "forever", "RYDES_N": "many"})
	err := parseFlags(f.fs, nil, env)
	require.ErrorContains(t, err, `invalid value "forever" for environment variable RYDES_TIMEOUT (flag -timeout)`)
	require.ErrorContains(t, err, `invalid value "many" for environment variable RYDES_N (flag -n)`)

	// A flag given on the command line does not read its variable, valid or not.
	f = newTestFlags()
	require.NoError(t, parseFlags(f.fs, []string{"-timeout", "3s", "-n", "2"}, env))
	require.Equal(t, 3*time.Second, *f.timeout)
}

func TestParseFlagsErrors(t *testing.T) {
	f := newTestFlags()
	err := parseFlags(f.fs, []string{"ID", "-h"}, nil)
	require.True(t, errors.Is(err, flag.ErrHelp), "got %v", err)
	require.Contains(t, f.out.String(), "-server")

	f = newTestFlags()
	err = parseFlags(f.fs, []string{"ID", "--nope"}, nil)
	require.ErrorContains(t, err, "flag provided but not defined: -nope")

	f = newTestFlags()
	err = parseFlags(f.fs, []string{"-n", "x"}, nil)
	require.ErrorContains(t, err, `invalid value "x" for flag -n`)
}

func TestLongDurationFlag(t *testing.T) {
	var d time.Duration
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	fs.Var(longDuration{&d}, "retention", "retention")
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "0d": 0, "0": 0, "36h": 36 * time.Hour, "90m": 90 * time.Minute, "1d": 24 * time.Hour,
	} {
		require.NoError(t, parseFlags(fs, []string{"--retention", in}, nil), in)
		require.Equal(t, want, d, in)
	}
	d = 24 * time.Hour
	require.Equal(t, "1d", longDuration{&d}.String())
	d = 36 * time.Hour
	require.Equal(t, "36h0m0s", longDuration{&d}.String())
	for _, bad := range []string{"7days", "-1d", "1.5d", "d", "soon"} {
		require.Error(t, parseFlags(fs, []string{"--retention", bad}, nil), bad)
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.Var(longDuration{&d}, "retention", "retention")
	require.NoError(t, parseFlags(fs, nil, envOf(map[string]string{"RYDES_RETENTION": "3d"})))
	require.Equal(t, 3*24*time.Hour, d, "RYDES_RETENTION sets it")
}

func TestServeRetentionFlag(t *testing.T) {
	cfg, _, err := serveConfig(nil, nil, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, cfg.Retention, "a week by default")
	cfg, _, err = serveConfig([]string{"--retention", "0"}, nil, &bytes.Buffer{})
	require.NoError(t, err)
	require.Zero(t, cfg.Retention, "0 keeps everything")
	cfg, _, err = serveConfig(nil, envOf(map[string]string{"RYDES_RETENTION": "30d"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, cfg.Retention)
}
